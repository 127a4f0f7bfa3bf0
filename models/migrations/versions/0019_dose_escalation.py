"""3+3 dose escalation: a trial's design and confirmed decisions, and each participant's level and DLT.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "dose_escalations",
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("levels", JSON, nullable=False),
        sa.Column("cohort_size", sa.Integer(), nullable=False),
        sa.Column("max_per_level", sa.Integer(), nullable=False),
        sa.Column("dlt_window_days", sa.Integer(), nullable=False),
        sa.Column("open_level", sa.Integer(), nullable=True),
        sa.Column("expanded", JSON, nullable=False),
        sa.Column("too_toxic", JSON, nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.Column("mtd_level", sa.Integer(), nullable=True),
        sa.Column("last_decision", JSON, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.trial_id"], name=op.f("fk_dose_escalations_trial_id_trials")
        ),
        sa.PrimaryKeyConstraint("trial_id", name=op.f("pk_dose_escalations")),
    )
    op.create_table(
        "dose_assignments",
        sa.Column("application_id", sa.String(length=40), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("dosed_on", sa.Date(), nullable=False),
        sa.Column("dlt", sa.Boolean(), nullable=True),
        sa.Column("evaluable", sa.Boolean(), nullable=False),
        sa.Column("observed_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_dose_assignments_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_dose_assignments")),
    )
    op.create_index(op.f("ix_dose_assignments_trial_id"), "dose_assignments", ["trial_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_dose_assignments_trial_id"), table_name="dose_assignments")
    op.drop_table("dose_assignments")
    op.drop_table("dose_escalations")
