"""The audit trail against someone who holds the database: an HMAC chain under a key kept outside it,
signed checkpoints kept elsewhere, existing unkeyed trails re-chained, and bulk reads audited."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result
from sqlalchemy import func, select, text

from models import ApiToken, AuditEntry, AuditHead, AuditPending, Role
from models.audit import GENESIS, AuditKeyError, AuditKeys, AuditTampered, audit_keys_of, canonical_entry
from models.base import JSONType, UTCDateTime
from models.db import Database
from models.migrate import upgrade
from services.audit import (
    Checkpoint,
    CheckpointError,
    chain_pending_entries,
    read_checkpoint,
    sign_checkpoint,
    verify_trail,
)
from services.tokens import create_token
from tests.support.applicants import eligible_applicant
from tests.support.cli import invoke, stack_env
from tests.support.http import assert_problem, auth
from tests.support.stack import Stack, make_settings
from tests.support.threads import at_once

Digest = Callable[[dict[str, Any]], str]
CANARY = "AUDIT-CANARY-0815"


def plain_sha256(row: dict[str, Any]) -> str:
    """What the unkeyed chain computed, and what anyone with the database can compute."""
    return hashlib.sha256(canonical_entry(row)).hexdigest()


def another_key(row: dict[str, Any]) -> str:
    return AuditKeys.parse(AuditKeys.new_entry(str(row["key_id"]))).entry_hash(row)


def lift_append_only(connection: sa.Connection) -> None:
    """What only the database's owner can do; the chain, not the triggers, must then tell."""
    if connection.dialect.name == "sqlite":
        connection.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_update"))
        connection.execute(text("DROP TRIGGER IF EXISTS audit_entries_no_delete"))
    else:
        connection.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))


def rows(db: Database) -> list[dict[str, Any]]:
    chain_pending_entries(db)  # what the scheduler does after each pass
    with db.engine.connect() as connection:
        result = connection.execute(select(AuditEntry.__table__).order_by(AuditEntry.seq)).mappings()
        return [dict(row) for row in result]


def rewrite(db: Database, seq: int, digest: Digest, **edit: Any) -> None:
    """Edit entry `seq`, then recompute every hash from it on with `digest` and move the head along."""
    table = AuditEntry.__table__
    trail = rows(db)
    with db.engine.begin() as connection:
        lift_append_only(connection)
        previous = GENESIS
        for row in trail:
            if row["seq"] >= seq:
                row.update(edit if row["seq"] == seq else {}, prev_hash=previous)
                row["hash"] = digest(row)
                connection.execute(table.update().where(table.c.seq == row["seq"]).values(**row))
            previous = row["hash"]
        connection.execute(sa.update(AuditHead).values(last_hash=previous))


def cut_tail(db: Database, keep: int) -> None:
    """Delete every entry after `keep` and move the head back to it, as a database holder could."""
    kept = next(row for row in rows(db) if row["seq"] == keep)
    with db.engine.begin() as connection:
        lift_append_only(connection)
        connection.execute(sa.delete(AuditEntry).where(AuditEntry.seq > keep))
        connection.execute(sa.update(AuditHead).values(last_seq=keep, last_hash=kept["hash"]))


def verify(db: Database, checkpoint: Checkpoint | None = None) -> Any:
    return verify_trail(db, checkpoint)


def checkpoint_of(db: Database) -> Checkpoint:
    chain_pending_entries(db)
    with db.reading() as session:
        return sign_checkpoint(session)


def more_entries(stack: Stack, count: int = 3) -> None:
    with stack.db.transaction() as session:
        for n in range(count):
            create_token(session, Role.ADMIN, name=f"later {n}")


# --- a database holder without the key ------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "digest", "problem"),
    [
        ({"actor": "mallory"}, plain_sha256, "entry 3 was altered"),
        ({"actor": "mallory"}, another_key, "entry 3 was altered"),
        ({"actor": "mallory", "key_id": "zz"}, plain_sha256, "names audit key 'zz'"),
    ],
    ids=["sha256", "another-key", "unknown-key-id"],
)
def test_an_entry_edited_and_rechained_without_the_key_fails_verification(
    stack: Stack, edit: dict[str, Any], digest: Digest, problem: str
) -> None:
    assert verify(stack.db).intact
    rewrite(stack.db, 3, digest, **edit)
    verdict = verify(stack.db)
    assert not verdict.intact and problem in str(verdict.problem) and verdict.entries == 2
    failed = accrual(stack, "audit", "verify")
    assert failed.exit_code == 1 and problem in failed.output


def test_entries_are_chained_under_the_key_their_row_names(stack: Stack) -> None:
    keys = audit_keys_of(stack.db.engine.dialect)
    trail = rows(stack.db)
    assert trail and all(row["key_id"] == keys.current for row in trail)
    assert all(row["hash"] == keys.entry_hash(row) != plain_sha256(row) for row in trail)


def test_nothing_that_writes_to_the_trail_commits_without_an_audit_key(stack: Stack) -> None:
    keyless = Database(stack.settings.database_url, audit_keys=None)
    try:
        with pytest.raises(AuditKeyError), keyless.transaction() as session:
            create_token(session, Role.ADMIN, name="unaudited")
        with stack.db.reading() as session:
            assert session.scalar(select(func.count()).where(ApiToken.name == "unaudited")) == 0
    finally:
        keyless.dispose()


def test_after_rotation_old_entries_verify_under_their_own_key(stack: Stack) -> None:
    old = stack.settings.audit_keys_text()
    new = AuditKeys.new_entry("a2")
    rotated = Database(stack.settings.database_url, audit_keys=AuditKeys.parse(f"{new},{old}"))
    new_only = Database(stack.settings.database_url, audit_keys=AuditKeys.parse(new))
    try:
        before = verify(stack.db).entries
        with rotated.transaction() as session:
            create_token(session, Role.ADMIN, name="after rotation")
        verdict = verify(rotated)
        assert verdict.intact and verdict.by_key == {"a1": before, "a2": 1}
        assert not verify(stack.db).intact  # a process without the new key cannot vouch for its entries
        dropped = verify(new_only)
        assert not dropped.intact and "names audit key 'a1'" in str(dropped.problem)
    finally:
        rotated.dispose()
        new_only.dispose()


# --- checkpoints ----------------------------------------------------------------------------------


def test_cutting_off_the_tail_after_a_checkpoint_fails_verify_with_it(stack: Stack) -> None:
    checkpoint = checkpoint_of(stack.db)
    more_entries(stack)
    cut_tail(stack.db, checkpoint.seq - 1)
    assert verify(stack.db).intact  # a clean cut is invisible to the chain alone...
    verdict = verify(stack.db, checkpoint)  # ...but not to a checkpoint kept elsewhere
    assert not verdict.intact and f"before the checkpoint's entry {checkpoint.seq}" in str(verdict.problem)


def test_a_key_holder_rewriting_history_is_caught_by_an_earlier_checkpoint(stack: Stack) -> None:
    checkpoint = checkpoint_of(stack.db)
    more_entries(stack)
    keys = audit_keys_of(stack.db.engine.dialect)
    rewrite(stack.db, 2, keys.entry_hash, actor="mallory")
    assert verify(stack.db).intact  # with the key, the chain can be forged...
    verdict = verify(stack.db, checkpoint)  # ...but not the checkpoint stored away from the database
    assert not verdict.intact and f"entry {checkpoint.seq} is not the one checkpointed" in str(
        verdict.problem
    )


def test_a_trail_that_extends_its_checkpoint_verifies(stack: Stack) -> None:
    checkpoint = checkpoint_of(stack.db)
    more_entries(stack)
    verdict = verify(stack.db, checkpoint)
    assert verdict.intact and verdict.entries == checkpoint.seq + 3


def test_a_checkpoint_altered_or_signed_with_another_key_is_refused(stack: Stack) -> None:
    keys = audit_keys_of(stack.db.engine.dialect)
    made = checkpoint_of(stack.db)
    assert read_checkpoint(made.text(), keys) == made
    key_id, seq, rest = made.text().removeprefix("acp1.").split(".", 2)
    moved = f"acp1.{key_id}.{int(seq) - 1}.{rest}"
    with pytest.raises(CheckpointError, match="signature does not match"):
        read_checkpoint(moved, keys)
    with pytest.raises(CheckpointError, match="signature does not match"):
        read_checkpoint(made.text(), AuditKeys.parse(AuditKeys.new_entry(key_id)))
    with pytest.raises(CheckpointError, match="audit key 'zz'"):
        read_checkpoint(made.text().replace(f"acp1.{key_id}.", "acp1.zz.", 1), keys)
    with pytest.raises(CheckpointError, match="not an audit checkpoint"):
        read_checkpoint("acp1.a1.12.nothex", keys)


def test_no_checkpoint_is_signed_for_a_broken_trail(stack: Stack) -> None:
    rewrite(stack.db, 2, plain_sha256, actor="mallory")
    with pytest.raises(CheckpointError, match="broken"):
        checkpoint_of(stack.db)


# --- the command line -----------------------------------------------------------------------------


def accrual(stack: Stack, *args: str) -> Result:
    """`accrual ARGS...` in this process, configured as the stack is (its data directory holds the key)."""
    return invoke(stack_env(stack, ACCRUAL_SECRET_KEY="test-secret", ACCRUAL_AUDIT_KEYS=""), *args)


def test_audit_checkpoint_and_verify_checkpoint_on_the_command_line(stack: Stack, tmp_path: Path) -> None:
    made = accrual(stack, "audit", "checkpoint")
    assert made.exit_code == 0, made.output
    [line] = made.stdout.splitlines()
    assert line.startswith("acp1.a1.")
    stored = tmp_path / "checkpoint.txt"
    stored.write_text(made.stdout)
    more_entries(stack)
    for source in (line, str(stored)):
        extended = accrual(stack, "audit", "verify", "--checkpoint", source)
        assert extended.exit_code == 0 and "audit trail intact" in extended.stdout, extended.output
        assert "it extends the checkpoint of entry" in extended.stdout
    cut_tail(stack.db, int(line.split(".")[2]) - 1)
    assert accrual(stack, "audit", "verify").exit_code == 0
    cut = accrual(stack, "audit", "verify", "--checkpoint", str(stored))
    assert cut.exit_code == 1 and "before the checkpoint's entry" in cut.output
    forged = accrual(stack, "audit", "verify", "--checkpoint", line[:-1] + ("0" if line[-1] != "0" else "1"))
    assert (
        forged.exit_code == 2 and "--checkpoint: the checkpoint's signature does not match" in forged.output
    )


# --- trails from before the key -------------------------------------------------------------------

LEGACY_FIELDS = ("seq", "at", "actor", "actor_role", "entity", "entity_id", "action", "changes", "prev_hash")
legacy_entries = sa.table(
    "audit_entries",
    *(sa.column(name) for name in ("seq", "actor", "actor_role", "entity", "entity_id", "action")),
    sa.column("at", UTCDateTime()),
    sa.column("changes", JSONType),
    sa.column("prev_hash"),
    sa.column("hash"),
)


def legacy_hash(entry: dict[str, Any]) -> str:
    content = {k: entry[k].isoformat() if isinstance(entry[k], datetime) else entry[k] for k in LEGACY_FIELDS}
    return hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def write_unkeyed_trail(db: Database, count: int) -> str:
    """Entries as revision 0009 wrote them (plain SHA-256); the chain's head."""
    previous = GENESIS
    with db.engine.begin() as connection:
        for seq in range(1, count + 1):
            entry = {
                "seq": seq,
                "at": datetime(2026, 11, 1, 12, seq, 30, 123456, tzinfo=UTC),
                "actor": "cli",
                "actor_role": "operator",
                "entity": "trial",
                "entity_id": f"NCT0000000{seq}",
                "action": "create",
                "changes": {"title": [None, f"trial {seq}"]},
                "prev_hash": previous,
            }
            entry["hash"] = previous = legacy_hash(entry)
            connection.execute(legacy_entries.insert().values(**entry))
        connection.execute(sa.update(AuditHead).values(last_seq=count, last_hash=previous))
    return previous


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A database at revision 0009, with the keys a process of this version is configured with."""
    url = (
        f"sqlite:///{tmp_path / 'old.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )
    db = Database.for_settings(make_settings(tmp_path, url))
    upgrade(db, "0009")
    yield db
    db.dispose()


def test_the_upgrade_rechains_an_unkeyed_trail_under_the_key(old_database: Database) -> None:
    unkeyed_head = write_unkeyed_trail(old_database, 4)
    upgrade(old_database)
    verdict = verify(old_database)
    assert verdict.intact and verdict.entries == 5 and verdict.by_key == {"a1": 5}
    *old, last = rows(old_database)
    assert [row["entity_id"] for row in old] == [f"NCT0000000{n}" for n in range(1, 5)]
    assert (last["entity"], last["action"]) == ("audit", "rechain")
    assert last["changes"] == {"entries": 4, "unkeyed_head": unkeyed_head}
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), old_database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1"))


def test_the_upgrade_refuses_to_rechain_a_trail_already_broken(old_database: Database) -> None:
    write_unkeyed_trail(old_database, 4)
    with old_database.engine.begin() as connection:
        lift_append_only(connection)
        connection.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2"))
    with pytest.raises(RuntimeError, match=r"already broken \(entry 2"):
        upgrade(old_database)
    with old_database.engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0009"
        assert "key_id" not in {c["name"] for c in sa.inspect(connection).get_columns("audit_entries")}


# --- bulk reads -----------------------------------------------------------------------------------


def test_s44_each_read_and_each_page_of_the_list_is_audited_with_who_which_and_when(stack: Stack) -> None:
    submitted = [stack.submit(eligible_applicant(f"{CANARY}-{n}")).get_json()["id"] for n in range(3)]
    first = stack.client.get("/api/v1/applications?limit=2", headers=auth(stack.coordinator)).get_json()
    second = stack.client.get(
        "/api/v1/applications",
        query_string={"limit": 2, "cursor": first["next_cursor"]},
        headers=auth(stack.coordinator),
    ).get_json()
    pages = [[item["id"] for item in page["items"]] for page in (first, second)]
    assert sorted(pages[0] + pages[1]) == sorted(submitted)
    trail = stack.client.get(
        "/api/v1/audit", query_string={"entity": "application", "id": "*"}, headers=auth(stack.admin)
    ).get_json()["items"]
    reads = [(e["action"], e["actor_role"], e["changes"]) for e in trail]
    assert reads == [("read", "coordinator", {"ids": page}) for page in pages]
    assert CANARY not in json.dumps(trail)  # ids only, never a screening id
    empty = stack.client.get("/api/v1/applications?status=enrolled", headers=auth(stack.coordinator))
    assert empty.status_code == 200 and empty.get_json()["items"] == []
    assert_problem(stack.client.get("/api/v1/applications?limit=0", headers=auth(stack.coordinator)), 422)
    after = stack.client.get(
        "/api/v1/audit", query_string={"entity": "application", "id": "*"}, headers=auth(stack.admin)
    ).get_json()["items"]
    assert len(after) == 2  # a page that showed nothing read nothing
    # One application read, as JSON and as FHIR: who read which, and when.
    for suffix in ("", "?format=fhir"):
        read = stack.client.get(f"/api/v1/applications/{submitted[0]}{suffix}", headers=auth(stack.admin))
        assert read.status_code == 200
    single = stack.client.get(
        "/api/v1/audit", query_string={"entity": "application", "id": submitted[0]}, headers=auth(stack.admin)
    ).get_json()["items"]
    viewed = [e for e in single if e["action"] == "read"]
    assert [e["actor_role"] for e in viewed] == ["admin", "admin"] and all(e["at"] for e in viewed)


# --- chained after commit -------------------------------------------------------------------------


def test_entries_wait_unchained_until_the_chainer_gives_them_their_place(stack: Stack) -> None:
    chain_pending_entries(stack.db)
    more_entries(stack, 3)  # committed, each with its writer's HMAC, no lock on the chain's head taken
    with stack.db.sessions() as session:
        waiting = session.scalar(select(sa.func.count()).select_from(AuditPending))
        head = session.get_one(AuditHead, 1).last_seq
    assert waiting == 3
    assert chain_pending_entries(stack.db) == 3
    assert chain_pending_entries(stack.db) == 0
    verdict = verify(stack.db)
    assert verdict.intact and verdict.entries == head + 3


def test_a_pending_entry_altered_before_it_is_chained_is_refused_and_reported(stack: Stack) -> None:
    chain_pending_entries(stack.db)
    more_entries(stack, 2)
    with pytest.raises(sa.exc.DBAPIError, match="never changed"), stack.db.engine.begin() as connection:
        connection.execute(sa.update(AuditPending).values(actor="mallory"))
    with stack.db.engine.begin() as connection:  # what only the table's owner can do
        if connection.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER audit_pending_no_update"))
        else:
            connection.execute(text("ALTER TABLE audit_pending DISABLE TRIGGER USER"))
        connection.execute(sa.update(AuditPending).values(actor="mallory"))
    with pytest.raises(AuditTampered):
        chain_pending_entries(stack.db)
    verdict = verify(stack.db)
    assert not verdict.intact and "altered while it waited" in str(verdict.problem)
    # The API still shows what was chained before it (and logs the fault).
    shown = stack.client.get("/api/v1/audit", headers={"Authorization": f"Bearer {stack.admin}"})
    assert shown.status_code == 200 and shown.get_json()["items"]
    with stack.db.sessions() as session:  # nothing of the altered batch entered the chain
        assert session.scalar(select(sa.func.count()).select_from(AuditPending)) == 2


def test_chainers_running_at_once_chain_each_entry_exactly_once(stack: Stack) -> None:
    before = len(rows(stack.db))
    more_entries(stack, 40)
    assert at_once(lambda: chain_pending_entries(stack.db), threads=4) == []
    with stack.db.sessions() as session:
        assert session.scalar(select(sa.func.count()).select_from(AuditPending)) == 0
    trail = rows(stack.db)
    assert [row["seq"] for row in trail] == list(range(1, before + 41))  # each once, no gap
    assert verify(stack.db).intact
