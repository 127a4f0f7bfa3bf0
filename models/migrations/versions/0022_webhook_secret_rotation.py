"""Webhook secret rotation: the previous secret, sealed like the current one, kept until its overlap ends.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Plain ALTER TABLE on both databases (SQLite adds and drops columns itself since 3.35): batch mode would
# rebuild the table on SQLite and lose the catalog triggers revision 0017 put on it.


def upgrade() -> None:
    op.add_column("webhook_subscriptions", sa.Column("previous_secret_sealed", sa.Text(), nullable=True))
    op.add_column(
        "webhook_subscriptions", sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.execute("ALTER TABLE webhook_subscriptions DROP COLUMN previous_secret_until")
    op.execute("ALTER TABLE webhook_subscriptions DROP COLUMN previous_secret_sealed")
