"""Webhook secrets sealed like observations: the format before (bare base64 under a key derived from
ACCRUAL_SECRET_KEY, one constant associated data) is re-sealed under the current data key as v2, bound
to the subscription's row, so that it can be rotated and does not open in another subscription's row.

Opening the old format needs ACCRUAL_SECRET_KEY, read from the configuration as `accrual db upgrade`
reads it (the migrating process must be given the same value as the API and workers), and only when
there is a secret to re-seal. The column stays text.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-13
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from config import get_settings
from models.sealing import (
    SealingError,
    binding,
    keyring_of,
    open_with_secret_key,
    seal_with_secret_key,
)

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

subscriptions = sa.table(
    "webhook_subscriptions", sa.column("id", sa.String), sa.column("secret_sealed", sa.Text)
)
BATCH = 1000
# The old format is bare base64, which never holds a colon; every keyring format begins `v<n>:`.
OLD_FORMAT = subscriptions.c.secret_sealed.not_like("%:%")


def _convert(due: sa.ColumnElement[bool], convert: Callable[[str, bytes], str]) -> None:
    """Rewrite every secret matching `due` with `convert(text, its binding)`, in batches (a converted
    row leaves the match)."""
    bind = op.get_bind()
    select_due = (
        sa.select(subscriptions.c.id, subscriptions.c.secret_sealed)
        .where(due)
        .order_by(subscriptions.c.id)
        .limit(BATCH)
    )
    while rows := bind.execute(select_due).all():
        for subscription_id, text in rows:
            bound_to = binding("webhook_subscriptions", "secret_sealed", subscription_id)
            try:
                converted = convert(text, bound_to)
            except SealingError as exc:  # the subscription's id, never the text
                raise SealingError(
                    f"webhook_subscriptions.secret_sealed of {subscription_id}: {exc}"
                ) from None
            bind.execute(
                subscriptions.update()
                .where(subscriptions.c.id == subscription_id)
                .values(secret_sealed=converted)
            )


def upgrade() -> None:
    bind = op.get_bind()

    def reseal(text: str, bound_to: bytes) -> str:
        secret = open_with_secret_key(text, get_settings().signing_key())
        return keyring_of(bind.dialect).seal(secret, bound_to)

    _convert(OLD_FORMAT, reseal)


def downgrade() -> None:
    # The code of revision 0011 opens the old format only.
    bind = op.get_bind()

    def unbind(text: str, bound_to: bytes) -> str:
        secret = str(keyring_of(bind.dialect).open(text, bound_to))
        return seal_with_secret_key(secret, get_settings().signing_key())

    _convert(sa.not_(OLD_FORMAT), unbind)
