"""The recruitment counters change in the transaction that changes the application.

Each change is appended to `count_changes` (no counter row is locked by the writers) and folded into
the counters by the scheduler. `counted_applications.version` goes: what is counted is compared with
the application's state itself, and a re-screening that leaves a status as it was writes nothing there.
The downgrade folds what is pending into the counters first, and gives every counted application the
version 0, so that the counting consumer of the older release counts each once more against the
counters (it takes away what was counted and adds what is).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# What the pending changes add to each counter ("WHERE true": SQLite's parser needs a WHERE before an
# upsert's ON CONFLICT when the rows come from a SELECT).
FOLDS = (
    """INSERT INTO status_counts (trial_id, site_id, status, count)
       SELECT trial_id, site_id, status, SUM(count) FROM count_changes WHERE status IS NOT NULL
       GROUP BY trial_id, site_id, status
       ON CONFLICT (trial_id, site_id, status) DO UPDATE SET count = status_counts.count + excluded.count""",
    """INSERT INTO weekly_counts (trial_id, site_id, week_start, applied, enrolled)
       SELECT trial_id, site_id, week_start, SUM(applied), SUM(enrolled) FROM count_changes
       WHERE week_start IS NOT NULL GROUP BY trial_id, site_id, week_start
       ON CONFLICT (trial_id, site_id, week_start) DO UPDATE SET
       applied = weekly_counts.applied + excluded.applied, enrolled = weekly_counts.enrolled + excluded.enrolled""",
    """INSERT INTO screen_failure_counts (trial_id, criterion_id, count)
       SELECT trial_id, criterion_id, SUM(count) FROM count_changes WHERE criterion_id IS NOT NULL
       GROUP BY trial_id, criterion_id
       ON CONFLICT (trial_id, criterion_id) DO UPDATE SET count = screen_failure_counts.count + excluded.count""",
)


def upgrade() -> None:
    op.create_table(
        "count_changes",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("trial_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("week_start", sa.Date(), nullable=True),
        sa.Column("criterion_id", sa.String(length=16), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_count_changes")),
    )
    op.create_index("ix_count_changes_trial", "count_changes", ["trial_id"], unique=False)
    # SQLite (3.35+) drops a column natively; a batch copy of the table would gain nothing.
    op.drop_column("counted_applications", "version")


def downgrade() -> None:
    for fold in FOLDS:
        op.execute(sa.text(fold))
    op.drop_index("ix_count_changes_trial", table_name="count_changes")
    op.drop_table("count_changes")
    op.add_column(
        "counted_applications", sa.Column("version", sa.Integer(), nullable=False, server_default="0")
    )
