"""Observations sealed at rest: the column holds AES-GCM text instead of JSON.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.sealing import binding, keyring_of

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
applications = sa.table("applications", sa.column("id", sa.String), sa.column("observations", sa.Text))


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.alter_column(
            "observations", existing_type=JSON, type_=sa.Text(), postgresql_using="observations::text"
        )
    rows = bind.execute(sa.select(applications.c.id, applications.c.observations)).all()
    if rows:  # applications from before sealing: seal them now, under the current key
        keyring = keyring_of(bind.dialect)
        for application_id, plain in rows:
            sealed = keyring.seal_unbound(json.loads(plain))  # the format of 0007; 0011 binds it to the row
            bind.execute(
                applications.update().where(applications.c.id == application_id).values(observations=sealed)
            )


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(applications.c.id, applications.c.observations)).all()
    if rows:
        keyring = keyring_of(bind.dialect)
        for application_id, sealed in rows:
            plain = json.dumps(keyring.open(sealed, binding("applications", "observations", application_id)))
            bind.execute(
                applications.update().where(applications.c.id == application_id).values(observations=plain)
            )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.alter_column(
            "observations", existing_type=sa.Text(), type_=JSON, postgresql_using="observations::jsonb"
        )
