"""An index to find applications by screening id (`GET /api/v1/applications?screening_id=`).

The unique key (trial, site, screening id) serves a lookup within one trial and site; a coordinator's
search names neither.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_applications_screening_id", "applications", ["screening_id"])


def downgrade() -> None:
    op.drop_index("ix_applications_screening_id", table_name="applications")
