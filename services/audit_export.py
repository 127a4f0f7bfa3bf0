"""`accrual audit export`: the audit trail of a time range, as CSV for people and JSON lines for programs.

21 CFR 11.10(b) asks for accurate and complete copies of records in human-readable and electronic
form; HIPAA 164.312(b) for a way to examine activity. The export holds every chained entry whose
time falls in the range, after chaining what is pending, read in one snapshot. It is one unbroken
piece of the chain, from the first entry of the range to the last: entries take their place in the
chain in commit order, so an entry written just outside the range can sit between two inside it, and
it is exported too. Each line's `prev_hash` is then the previous line's `hash`, and with the audit key
anyone can recompute every `hash` from the line's own fields (every column is exported), so a copy
can be checked without the database.

The export is itself audited: one entry names who exported which range, how many entries, to where.
"""

from __future__ import annotations

import csv
import getpass
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import RowMapping, func, select
from sqlalchemy.orm import Session

from models import AuditEntry
from models.db import Database
from services.audit import chain_pending_entries, chained_entries, note, one_snapshot

FORMATS = ("jsonl", "csv")
BATCH = 5000
COLUMNS = tuple(column.name for column in AuditEntry.__table__.columns)


@dataclass(frozen=True)
class Exported:
    """What an export wrote: how many entries, and the chain's first and last place among them."""

    entries: int
    first_seq: int | None
    last_seq: int | None


def export_audit(
    db: Database, since: datetime, until: datetime, form: str, out: TextIO, destination: str
) -> Exported:
    """Write the entries of [since, until) to `out` as `form`, then audit the export; what was written."""
    if form not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    chain_pending_entries(db)
    with db.reading() as session:
        one_snapshot(session)  # the range's bounds and the entries between them agree
        first, last = _seq_range(session, since, until)
        rows = (
            chained_entries(session, BATCH, first, last)
            if first is not None and last is not None
            else iter(())
        )
        count = (_write_jsonl if form == "jsonl" else _write_csv)(rows, out)
    out.flush()
    exported = Exported(count, first, last)
    _audit_the_export(db, since, until, form, destination, exported)
    return exported


def _seq_range(session: Session, since: datetime, until: datetime) -> tuple[int | None, int | None]:
    """The chain's first and last place of an entry timed in [since, until); None, None for none."""
    bounds = session.execute(
        select(func.min(AuditEntry.seq), func.max(AuditEntry.seq)).where(
            AuditEntry.at >= since, AuditEntry.at < until
        )
    ).one()
    return bounds[0], bounds[1]


def plain(entry: RowMapping) -> dict[str, Any]:
    """The entry's columns as JSON values: times in ISO 8601, as the chain's hash covers them."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value for name, value in entry.items()
    }


def _write_jsonl(rows: Iterator[RowMapping], out: TextIO) -> int:
    count = 0
    for count, entry in enumerate(rows, start=1):  # noqa: B007 - the count is the answer
        out.write(json.dumps(plain(entry), ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n")
    return count


def _write_csv(rows: Iterator[RowMapping], out: TextIO) -> int:
    """One row per entry under a header naming each column; `changes` as JSON text in its cell."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    count = 0
    for count, entry in enumerate(rows, start=1):  # noqa: B007 - the count is the answer
        row = plain(entry)
        row["changes"] = json.dumps(row["changes"], ensure_ascii=False, sort_keys=True)
        writer.writerow(row)
    return count


def _audit_the_export(
    db: Database, since: datetime, until: datetime, form: str, destination: str, exported: Exported
) -> None:
    """One entry saying who exported which range, chained at once, so the next export shows it."""
    with db.transaction() as session:
        note(
            session,
            "audit",
            "export",
            "export",
            {
                "since": since.isoformat(),
                "until": until.isoformat(),
                "format": form,
                "entries": exported.entries,
                "first_seq": exported.first_seq,
                "last_seq": exported.last_seq,
                "to": destination,
                "os_user": _os_user(),
            },
        )
    chain_pending_entries(db)


def _os_user() -> str:
    """The operating-system account that ran the export: the audit's actor says only `cli`."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
