"""Event retention: how far the purge of published events has reached, so that the feed can tell a
reader whose cursor points before it that events after its cursor are gone (410), rather than skip them.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "event_retention",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("purged_txid", sa.BigInteger(), nullable=False),
        sa.Column("purged_seq", sa.BigInteger(), nullable=False),
        sa.Column("purged_count", sa.BigInteger(), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_retention")),
    )
    # One row: nothing purged yet, so every position is still within reach (the feed's start is -1, 0).
    op.bulk_insert(table, [{"id": 1, "purged_txid": -1, "purged_seq": 0, "purged_count": 0}])


def downgrade() -> None:
    op.drop_table("event_retention")
