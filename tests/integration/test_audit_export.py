"""Scenario 48 of RELIABILITY.md §7: `accrual audit export` of a time range, on SQLite and PostgreSQL.

The export is complete for the range (every entry timed in it, checked against the database), one
unbroken piece of the chain whose hashes recompute under the audit key from the exported lines alone,
human-readable (CSV with a header) and machine-readable (JSON lines) alike, and itself audited. That it
survives a backup and restore (the copy's export equals the original's) is scenario 51's test, in
tests/integration/test_backup_restore.py.
"""

from __future__ import annotations

import csv
import io
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import Result
from sqlalchemy import select

from models import AuditEntry
from models.audit import audit_keys_of
from models.base import utcnow
from tests.support.applications import post
from tests.support.cli import invoke, stack_env
from tests.support.screening import decide
from tests.support.stack import Stack


def accrual(stack: Stack, *args: str) -> Result:
    """`accrual ARGS...` configured as the stack is (its data directory holds the audit key)."""
    return invoke(stack_env(stack, ACCRUAL_SECRET_KEY="test-secret", ACCRUAL_AUDIT_KEYS=""), *args)


def export(stack: Stack, since: datetime, until: datetime, form: str, *more: str) -> Result:
    return accrual(
        stack,
        "audit",
        "export",
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat(),
        "--format",
        form,
        *more,
    )


def entries_timed(stack: Stack, since: datetime, until: datetime) -> list[int]:
    with stack.db.sessions() as session:
        return list(
            session.scalars(
                select(AuditEntry.seq)
                .where(AuditEntry.at >= since, AuditEntry.at < until)
                .order_by(AuditEntry.seq)
            )
        )


def hash_before(stack: Stack, seq: int) -> str:
    with stack.db.sessions() as session:
        return str(session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == seq - 1)))


def activity(stack: Stack) -> None:
    """Applications submitted, screened and enrolled: entries for the trail."""
    eligible = decide(stack, screening_id="S-EXPORT-1")
    decide(stack, screening_id="S-EXPORT-2")
    assert post(stack, eligible, "enroll").status_code == 200


def test_s48_the_audit_export_of_a_range_is_complete_rechecks_and_is_audited(
    stack: Stack, tmp_path: Path
) -> None:
    since = utcnow()
    time.sleep(0.01)
    activity(stack)
    assert accrual(stack, "audit", "verify").exit_code == 0  # chains what is pending
    time.sleep(0.01)
    until = utcnow()
    activity_after = decide(stack, screening_id="S-EXPORT-LATER")  # after the range: not exported
    assert activity_after

    jsonl = tmp_path / "audit.jsonl"
    made = export(stack, since, until, "jsonl", "--output", str(jsonl))
    assert made.exit_code == 0, made.output
    lines = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    in_range = entries_timed(stack, since, until)
    assert len(in_range) >= 6
    seqs = [line["seq"] for line in lines]
    assert set(in_range) <= set(seqs) and seqs == list(range(in_range[0], in_range[-1] + 1))
    assert f"exported {len(lines)} audit entries (seq {seqs[0]} to {seqs[-1]})" in made.stderr
    assert_rechecks(stack, lines)

    table = export(stack, since, until, "csv")
    assert table.exit_code == 0, table.output
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert rows and set(rows[0]) == set(lines[0])  # a header naming every column
    assert [(int(r["seq"]), r["hash"], r["prev_hash"], r["key_id"]) for r in rows] == [
        (line["seq"], line["hash"], line["prev_hash"], line["key_id"]) for line in lines
    ]
    assert [json.loads(r["changes"]) for r in rows] == [line["changes"] for line in lines]

    assert exports_audited(stack) == [
        {"format": form, "entries": len(lines), "first_seq": seqs[0], "last_seq": seqs[-1], "to": to}
        for form, to in (("jsonl", str(jsonl)), ("csv", "stdout"))
    ]


def assert_rechecks(stack: Stack, lines: list[dict[str, Any]]) -> None:
    """Each line follows the one before it, and its hash is the HMAC of its own fields."""
    keys = audit_keys_of(stack.db.engine.dialect)
    previous = hash_before(stack, lines[0]["seq"])
    for line in lines:
        assert line["prev_hash"] == previous, line["seq"]
        assert keys.entry_hash(line) == line["hash"], line["seq"]
        previous = line["hash"]


def exports_audited(stack: Stack) -> list[dict[str, Any]]:
    with stack.db.sessions() as session:
        found = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity == "audit", AuditEntry.action == "export")
            .order_by(AuditEntry.seq)
        ).all()
    assert all((entry.actor, entry.actor_role) == ("cli", "operator") for entry in found)
    return [
        {k: entry.changes[k] for k in ("format", "entries", "first_seq", "last_seq", "to")} for entry in found
    ]


def test_s48_an_export_of_a_range_without_entries_is_empty_and_still_audited(stack: Stack) -> None:
    long_ago = datetime(2001, 1, 1).astimezone()
    made = export(stack, long_ago, long_ago + timedelta(days=1), "jsonl")
    assert made.exit_code == 0 and made.stdout == "" and "exported 0 audit entries" in made.stderr
    assert exports_audited(stack) == [
        {"format": "jsonl", "entries": 0, "first_seq": None, "last_seq": None, "to": "stdout"}
    ]


def test_s48_bad_bounds_are_refused_naming_the_option(stack: Stack) -> None:
    garbled = accrual(
        stack, "audit", "export", "--since", "last tuesday", "--until", "2030-01-01", "--format", "csv"
    )
    assert garbled.exit_code == 2 and "--since" in garbled.stderr
    now = utcnow()
    backwards = export(stack, now, now - timedelta(hours=1), "csv")
    assert backwards.exit_code == 2 and "--until" in backwards.stderr
    assert exports_audited(stack) == []
