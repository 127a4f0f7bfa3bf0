"""Randomisation at enrolment: a trial's scheme and each participant's allocation; unblinded tokens.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "randomisation_schemes",
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("algorithm", sa.String(length=40), nullable=False),
        sa.Column("arms", JSON, nullable=False),
        sa.Column("strata", JSON, nullable=False),
        sa.Column("block_sizes", JSON, nullable=False),
        sa.Column("factors", JSON, nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("imbalance", sa.String(length=16), nullable=False),
        sa.Column("uploaded_list", sa.Boolean(), nullable=False),
        sa.Column("commitment", sa.String(length=80), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("allocated", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.trial_id"], name=op.f("fk_randomisation_schemes_trial_id_trials")
        ),
        sa.PrimaryKeyConstraint("trial_id", name=op.f("pk_randomisation_schemes")),
    )
    op.create_table(
        "allocations",
        sa.Column("application_id", sa.String(length=40), nullable=False),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("allocated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unblinded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unblinded_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_allocations_application_id_applications")
        ),
        sa.PrimaryKeyConstraint("application_id", name=op.f("pk_allocations")),
        sa.UniqueConstraint("trial_id", "sequence", name=op.f("uq_allocations_trial_id_sequence")),
    )
    op.create_index(op.f("ix_allocations_trial_id"), "allocations", ["trial_id"])
    # A plain ADD COLUMN: a batch copy on SQLite would drop the catalog trigger on api_tokens (0017).
    op.add_column(
        "api_tokens", sa.Column("unblinded", sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    op.drop_column("api_tokens", "unblinded")
    op.drop_index(op.f("ix_allocations_trial_id"), table_name="allocations")
    op.drop_table("allocations")
    op.drop_table("randomisation_schemes")
