"""The audit trail chained after commit: writers append to `audit_pending`, the chainer moves entries
into `audit_entries` in commit order.

No writer locks the chain's head any more. Entries wait in `audit_pending`, each with its writer's HMAC
of its content, until the chainer (the scheduler, and every reader of the trail before it reads) gives
them their place. The downgrade chains what is pending first, as the older release expects nothing there.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from models.audit import chain_pending

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
# A pending entry is written once and deleted once chained, never changed: as for audit_entries, only
# the table's owner, dropping the trigger, can edit one (and the chainer then refuses it by its HMAC).
POSTGRES_NO_UPDATE = (
    """CREATE FUNCTION audit_pending_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_pending entries are never changed: UPDATE refused' USING ERRCODE = 'insufficient_privilege';
END;
$$""",
    """CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending
    FOR EACH ROW EXECUTE FUNCTION audit_pending_unchanged()""",
)
SQLITE_NO_UPDATE = (
    "CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending "
    "BEGIN SELECT RAISE(ABORT, 'audit_pending entries are never changed: UPDATE refused'); END",
)


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("changes", JSON, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pending")),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRES_NO_UPDATE if postgres else SQLITE_NO_UPDATE:
        op.execute(statement)


def downgrade() -> None:
    # Only when something waits: chain_pending reads the pending table as today's models describe it,
    # columns of later revisions included, and later revisions' downgrades leave nothing pending.
    if op.get_bind().execute(sa.text("SELECT 1 FROM audit_pending LIMIT 1")).first() is not None:
        with Session(bind=op.get_bind()) as session:
            while chain_pending(session):
                pass
    op.drop_table("audit_pending")  # its trigger with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION audit_pending_unchanged()")
