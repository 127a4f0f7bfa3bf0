"""Recruitment counters kept by the counting consumer: statuses, weeks, screen failures.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "screen_failure_counts",
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("criterion_id", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("trial_id", "criterion_id", name=op.f("pk_screen_failure_counts")),
    )
    op.create_table(
        "status_counts",
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("trial_id", "site_id", "status", name=op.f("pk_status_counts")),
    )
    op.create_table(
        "weekly_counts",
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("trial_id", "site_id", "week_start", name=op.f("pk_weekly_counts")),
    )
    with op.batch_alter_table("weekly_counts", schema=None) as batch_op:
        batch_op.create_index("ix_weekly_counts_trial_week", ["trial_id", "week_start"], unique=False)

    op.create_table(
        "counted_applications",
        sa.Column("application_id", sa.String(length=40), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("applied_week", sa.Date(), nullable=False),
        sa.Column("enrolled_week", sa.Date(), nullable=True),
        sa.Column(
            "failed_criteria",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_counted_applications_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_counted_applications")),
    )


def downgrade() -> None:
    op.drop_table("counted_applications")
    with op.batch_alter_table("weekly_counts", schema=None) as batch_op:
        batch_op.drop_index("ix_weekly_counts_trial_week")

    op.drop_table("weekly_counts")
    op.drop_table("status_counts")
    op.drop_table("screen_failure_counts")
