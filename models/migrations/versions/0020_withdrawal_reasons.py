"""Coded withdrawal reasons (contract v1.2), counted per reason for the CONSORT flow.

A withdrawal's history row gains `reason_code`; the free-text reasons of earlier withdrawals become
`other`. The counters hold a withdrawal before enrolment under `wd:<reason>` instead of `withdrawn`
(services.reporting.counts), so the report reads the breakdown from its counters; earlier ones move to
`wd:other`. The downgrade folds them back into `withdrawn`.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTED_TABLES = ("counted_applications", "status_counts", "count_changes")


def upgrade() -> None:
    op.add_column("application_history", sa.Column("reason_code", sa.String(length=32), nullable=True))
    op.execute("UPDATE application_history SET reason_code = 'other' WHERE status = 'withdrawn'")
    for table in COUNTED_TABLES:
        op.execute(f"UPDATE {table} SET status = 'wd:other' WHERE status = 'withdrawn'")  # noqa: S608


def downgrade() -> None:
    op.execute("UPDATE counted_applications SET status = 'withdrawn' WHERE status LIKE 'wd:%'")
    op.execute("UPDATE count_changes SET status = 'withdrawn' WHERE status LIKE 'wd:%'")
    # status_counts is keyed by status: several reasons of one site fold into one `withdrawn` row.
    op.execute(
        "INSERT INTO status_counts (trial_id, site_id, status, count) "
        "SELECT trial_id, site_id, 'withdrawn', SUM(count) FROM status_counts WHERE status LIKE 'wd:%' "
        "GROUP BY trial_id, site_id"
    )
    op.execute("DELETE FROM status_counts WHERE status LIKE 'wd:%'")
    with op.batch_alter_table("application_history") as table:
        table.drop_column("reason_code")
