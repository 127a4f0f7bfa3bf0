"""Sealed observations bound to their row: v1 values (one constant associated data, so they opened in
any row) are re-sealed as v2, whose associated data names the table, the column and the application.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from models.sealing import BOUND, UNBOUND, Keyring, binding, keyring_of

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

applications = sa.table("applications", sa.column("id", sa.String), sa.column("observations", sa.Text))
BATCH = 1000


def _convert(source_format: str, seal: Callable[[Keyring, object, bytes], str]) -> None:
    """Re-seal every value in `source_format` with `seal`, in batches (a converted row leaves the match)."""
    bind = op.get_bind()
    due = (
        sa.select(applications.c.id, applications.c.observations)
        .where(applications.c.observations.like(f"{source_format}:%"))
        .order_by(applications.c.id)
        .limit(BATCH)
    )
    while rows := bind.execute(due).all():
        keyring = keyring_of(bind.dialect)  # only asked for when there is something to re-seal
        for application_id, text in rows:
            bound_to = binding("applications", "observations", application_id)
            sealed = seal(keyring, keyring.open(text, bound_to), bound_to)
            bind.execute(
                applications.update().where(applications.c.id == application_id).values(observations=sealed)
            )


def upgrade() -> None:
    _convert(UNBOUND, lambda keyring, value, bound_to: keyring.seal(value, bound_to))


def downgrade() -> None:
    # The code of revision 0010 opens v1 only.
    _convert(BOUND, lambda keyring, value, _bound_to: keyring.seal_unbound(value))
