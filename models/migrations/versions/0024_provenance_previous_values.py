"""Who did it and what it replaced: each audit entry's service identity and correlation id, each
outbox event's correlation id, and the sealed values a correction replaced.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

from models.audit import CHAINED_FIELDS, GENESIS, audit_keys_of, chain_pending
from models.base import JSONType, UTCDateTime

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUDIT_TABLES = ("audit_entries", "audit_pending")


def upgrade() -> None:
    # Entries written before this revision have neither: they are left out of an entry's signed
    # content when empty (models.audit.LATER_FIELDS), so the chain verifies as before. Plain ALTERs,
    # never a batch rebuild, which on SQLite would drop the append-only triggers with the old table.
    for table in AUDIT_TABLES:
        op.add_column(table, sa.Column("service", sa.String(length=80), nullable=True))
        op.add_column(table, sa.Column("request_id", sa.String(length=64), nullable=True))
    op.create_index("ix_audit_entries_request_id", "audit_entries", ["request_id"])
    op.add_column("events", sa.Column("request_id", sa.String(length=64), nullable=True))
    op.create_table(
        "previous_values",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("application_id", sa.String(length=40), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("values", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_previous_values_application_id", "previous_values", ["application_id"])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM audit_pending LIMIT 1")).first() is not None:
        with Session(bind=bind) as session:
            while chain_pending(session):  # chained while the table still has the columns code reads
                pass
    _rechain_without_provenance(bind)
    op.drop_index("ix_previous_values_application_id", table_name="previous_values")
    op.drop_table("previous_values")
    op.drop_column("events", "request_id")
    op.drop_index("ix_audit_entries_request_id", table_name="audit_entries")
    for table in AUDIT_TABLES:
        op.drop_column(table, "request_id")
        op.drop_column(table, "service")


# --- downgrade: the chain without the two fields -------------------------------------------------

BATCH = 1000
# Typed as the models read them, so that an entry's content hashes as it did when it was chained.
TYPED: dict[str, Any] = {"at": UTCDateTime(), "changes": JSONType}
entries = sa.table("audit_entries", *(sa.column(name, TYPED.get(name)) for name in (*CHAINED_FIELDS, "hash")))
head = sa.table("audit_head", sa.column("id"), sa.column("last_seq"), sa.column("last_hash"))
POSTGRES_APPEND_ONLY = "audit_entries_no_update_or_delete"
SQLITE_APPEND_ONLY = {
    "audit_entries_no_update": "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: UPDATE refused'); END",
    "audit_entries_no_delete": "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: DELETE refused'); END",
}


def _rechain_without_provenance(bind: sa.Connection) -> None:
    """Entries that name their service or request hash both: without the columns they would no longer
    verify. From the first of them on, each entry is checked as it stands, then chained again without
    the two fields, under its own key, with the append-only triggers lifted in this transaction only.
    A trail already broken there is not re-chained (that would hide the break): the downgrade stops."""
    first = bind.execute(
        sa.select(sa.func.min(entries.c.seq)).where(
            entries.c.service.isnot(None) | entries.c.request_id.isnot(None)
        )
    ).scalar()
    if first is None:
        return
    keys = audit_keys_of(bind.dialect)
    stood = bind.execute(sa.select(entries.c.hash).where(entries.c.seq == first - 1)).scalar() or GENESIS
    previous, expected_seq = stood, first
    updates: list[dict[str, Any]] = []
    for row in _rows_from(bind, first):
        # Checked as it stands, link by link: a gap, a reordering or an edit stops the downgrade.
        intact = (
            row["seq"] == expected_seq and row["prev_hash"] == stood and keys.entry_hash(row) == row["hash"]
        )
        if not intact:
            raise RuntimeError(f"audit entry {row['seq']} does not verify: not re-chained, downgrade stopped")
        stood, expected_seq = row["hash"], expected_seq + 1
        plain = {**row, "service": None, "request_id": None, "prev_hash": previous}
        previous = keys.entry_hash(plain)
        updates.append({"s": row["seq"], "p": plain["prev_hash"], "h": previous})
    _lift_append_only(bind)
    for start in range(0, len(updates), BATCH):
        bind.execute(
            entries.update()
            .where(entries.c.seq == sa.bindparam("s"))
            .values(prev_hash=sa.bindparam("p"), hash=sa.bindparam("h")),
            updates[start : start + BATCH],
        )
    bind.execute(head.update().where(head.c.id == 1).values(last_hash=previous))
    _restore_append_only(bind)


def _rows_from(bind: sa.Connection, first: int) -> list[dict[str, Any]]:
    query = sa.select(entries).where(entries.c.seq >= first).order_by(entries.c.seq)
    return [dict(row) for row in bind.execute(query).mappings()]


def _lift_append_only(bind: sa.Connection) -> None:
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE audit_entries DISABLE TRIGGER {POSTGRES_APPEND_ONLY}")
    else:
        for name in SQLITE_APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _restore_append_only(bind: sa.Connection) -> None:
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER TABLE audit_entries ENABLE TRIGGER {POSTGRES_APPEND_ONLY}")
    else:
        for statement in SQLITE_APPEND_ONLY.values():
            op.execute(statement)
