"""The audit chain keyed: each entry's hash becomes an HMAC under an audit key kept outside the database.

Entries written before are re-chained under the current key (ACCRUAL_AUDIT_KEYS), with the append-only
triggers lifted inside this migration's transaction only. The old, unkeyed chain is verified first: a
trail already broken is not re-chained (that would hide the break), and the migration stops, naming
the entry. A last entry records the re-chaining and the old chain's head, so that a head kept from
before still means something. Downgrading re-chains with plain SHA-256 and gives up the key's protection.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from models.audit import GENESIS, audit_keys_of
from models.base import JSONType, UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
LEGACY_FIELDS = ("seq", "at", "actor", "actor_role", "entity", "entity_id", "action", "changes", "prev_hash")
entries = sa.table(
    "audit_entries",
    sa.column("seq", sa.BigInteger),
    sa.column("at", UTCDateTime()),
    sa.column("actor", sa.String),
    sa.column("actor_role", sa.String),
    sa.column("entity", sa.String),
    sa.column("entity_id", sa.String),
    sa.column("action", sa.String),
    sa.column("changes", JSONType),
    sa.column("prev_hash", sa.String),
    sa.column("hash", sa.String),
    sa.column("key_id", sa.String),
)
head = sa.table("audit_head", sa.column("id"), sa.column("last_seq"), sa.column("last_hash"))
SQLITE_TRIGGERS = {
    "audit_entries_no_update": "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: UPDATE refused'); END",
    "audit_entries_no_delete": "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: DELETE refused'); END",
}


def legacy_hash(entry: dict[str, Any]) -> str:
    """The unkeyed SHA-256 of revision 0006, frozen here."""
    content = {k: entry[k].isoformat() if isinstance(entry[k], datetime) else entry[k] for k in LEGACY_FIELDS}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _rows(bind: sa.Connection) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        batch = bind.execute(
            sa.select(entries).where(entries.c.seq > after).order_by(entries.c.seq).limit(BATCH)
        ).mappings()
        rows = [dict(row) for row in batch]
        if not rows:
            return
        yield from rows
        after = rows[-1]["seq"]


def _lift_append_only(bind: sa.Connection) -> None:
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_update_or_delete")
    else:  # SQLite: a batch alteration rebuilds the table anyway, losing its triggers
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _restore_append_only(bind: sa.Connection) -> None:
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_no_update_or_delete")
    else:
        for statement in SQLITE_TRIGGERS.values():
            op.execute(statement)


def _rechain(
    bind: sa.Connection, digest: Callable[[dict[str, Any]], str], key_id: str | None
) -> tuple[int, str]:
    """Give every entry, in order, a new prev_hash and hash from `digest`; the new head."""
    previous, count, updates = GENESIS, 0, []
    for row in _rows(bind):
        row.update(prev_hash=previous, key_id=key_id)
        previous, count = digest(row), count + 1
        updates.append({"s": row["seq"], "p": row["prev_hash"], "h": previous, "k": key_id})
        if len(updates) == BATCH:
            _write(bind, updates)
            updates = []
    if updates:
        _write(bind, updates)
    bind.execute(head.update().where(head.c.id == 1).values(last_seq=count, last_hash=previous))
    return count, previous


def _write(bind: sa.Connection, updates: list[dict[str, Any]]) -> None:
    bind.execute(
        entries.update()
        .where(entries.c.seq == sa.bindparam("s"))
        .values(prev_hash=sa.bindparam("p"), hash=sa.bindparam("h"), key_id=sa.bindparam("k")),
        updates,
    )


def _legacy_break(bind: sa.Connection) -> str | None:
    """Where the unkeyed chain is broken, or None when it is intact up to its head."""
    previous, count = GENESIS, 0
    for row in _rows(bind):
        count += 1
        if row["seq"] != count or row["prev_hash"] != previous or legacy_hash(row) != row["hash"]:
            return f"entry {count} is altered, missing or out of place"
        previous = row["hash"]
    last = bind.execute(sa.select(head.c.last_seq, head.c.last_hash).where(head.c.id == 1)).one()
    if (int(last.last_seq), str(last.last_hash)) != (count, previous):
        return f"the chain ends at entry {count}, but its head says {last.last_seq}"
    return None


def _note_rechaining(bind: sa.Connection, count: int, legacy_head: str) -> None:
    """Append, under the key, the entry that says the chain was re-keyed here and what it was before."""
    keys = audit_keys_of(bind.dialect)
    last = bind.execute(sa.select(head.c.last_hash).where(head.c.id == 1)).scalar_one()
    entry: dict[str, Any] = {
        "seq": count + 1,
        "at": datetime.now(UTC),
        "actor": "system",
        "actor_role": "system",
        "entity": "audit",
        "entity_id": "chain",
        "action": "rechain",
        "changes": {"entries": count, "unkeyed_head": legacy_head},
        "prev_hash": last,
        "key_id": keys.current,
    }
    entry["hash"] = keys.entry_hash(entry)
    bind.execute(entries.insert().values(**entry))
    bind.execute(head.update().where(head.c.id == 1).values(last_seq=count + 1, last_hash=entry["hash"]))


def upgrade() -> None:
    bind = op.get_bind()
    _lift_append_only(bind)
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_id", sa.String(length=16), nullable=True))
    if bind.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one():
        problem = _legacy_break(bind)
        if problem is not None:
            raise RuntimeError(
                f"the audit trail is already broken ({problem}); re-chaining it under the audit key "
                "would hide that. Investigate, or restore the database from a backup, then upgrade."
            )
        legacy_head = bind.execute(sa.select(head.c.last_hash).where(head.c.id == 1)).scalar_one()
        keys = audit_keys_of(bind.dialect)
        count, _ = _rechain(bind, keys.entry_hash, keys.current)
        _note_rechaining(bind, count, legacy_head)
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.alter_column("key_id", existing_type=sa.String(length=16), nullable=False)
    _restore_append_only(bind)


def downgrade() -> None:
    bind = op.get_bind()
    _lift_append_only(bind)
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.alter_column("key_id", existing_type=sa.String(length=16), nullable=True)
    _rechain(bind, legacy_hash, None)
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_column("key_id")
    _restore_append_only(bind)
