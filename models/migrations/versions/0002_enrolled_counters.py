"""Enrolled counters on trials and sites, with CHECK constraints against exceeding a target.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITHIN_TARGET = "enrolled_count >= 0 AND (enrollment_target IS NULL OR enrolled_count <= enrollment_target)"


def upgrade() -> None:
    for table in ("trials", "sites"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("enrolled_count", sa.Integer(), server_default="0", nullable=False))
            batch.create_check_constraint(op.f(f"ck_{table}_enrolled_within_target"), WITHIN_TARGET)
    # Counters start from what is already enrolled.
    op.execute(
        "UPDATE trials SET enrolled_count = (SELECT count(*) FROM applications a "
        "WHERE a.trial_id = trials.trial_id AND a.status = 'enrolled')"
    )
    op.execute(
        "UPDATE sites SET enrolled_count = (SELECT count(*) FROM applications a "
        "WHERE a.site_id = sites.site_id AND a.status = 'enrolled')"
    )


def downgrade() -> None:
    for table in ("trials", "sites"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_enrolled_within_target"), type_="check")
            batch.drop_column("enrolled_count")
