"""A screening's per-criterion results as one sealed value in its row, instead of a row per criterion.

`screenings.results` holds `{"criteria": [{"id", "kind", "outcome", "missing"?, "note"?}, ...]}` in
protocol order (services.applications.results), sealed under the current data key (ACCRUAL_DATA_KEYS)
and bound to the screening's application and round. Every screening's rows are folded into it, then
`criterion_results` is dropped. The downgrade opens each value and writes the rows back.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-14
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.sealing import Keyring, SealingError, binding, keyring_of

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
screenings = sa.table(
    "screenings",
    sa.column("id", sa.Integer),
    sa.column("application_id", sa.String),
    sa.column("round", sa.Integer),
    sa.column("results", sa.Text),
)
criterion_results = sa.table(
    "criterion_results",
    sa.column("screening_id", sa.Integer),
    sa.column("position", sa.Integer),
    sa.column("criterion_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("outcome", sa.String),
    sa.column("missing", JSON),
    sa.column("note", sa.Text),
)


def _bound_to(application_id: str, round_: int) -> bytes:
    return binding("screenings", "results", f"{application_id}/{round_}")


def _screenings_after(last_id: int) -> Sequence[Any]:
    select_batch = (
        sa.select(screenings.c.id, screenings.c.application_id, screenings.c.round, screenings.c.results)
        .where(screenings.c.id > last_id)
        .order_by(screenings.c.id)
        .limit(BATCH)
    )
    return op.get_bind().execute(select_batch).all()


def _entry(row: sa.Row[Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": row.criterion_id, "kind": row.kind, "outcome": row.outcome}
    if row.missing:
        entry["missing"] = list(row.missing)
    if row.note is not None:
        entry["note"] = row.note
    return entry


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("screenings", sa.Column("results", sa.Text(), nullable=True))
    last_id = 0
    while batch := _screenings_after(last_id):
        keyring = keyring_of(bind.dialect)  # asked for only when there is something to seal
        rows = bind.execute(
            sa.select(criterion_results)
            .where(criterion_results.c.screening_id.in_([s.id for s in batch]))
            .order_by(criterion_results.c.screening_id, criterion_results.c.position)
        ).all()
        entries: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            entries[row.screening_id].append(_entry(row))
        bind.execute(
            screenings.update()
            .where(screenings.c.id == sa.bindparam("screening"))
            .values(results=sa.bindparam("sealed")),
            [
                {
                    "screening": s.id,
                    "sealed": keyring.seal({"criteria": entries[s.id]}, _bound_to(s.application_id, s.round)),
                }
                for s in batch
            ],
        )
        last_id = batch[-1].id
    with op.batch_alter_table("criterion_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_criterion_results_screening_id"))
        batch_op.drop_index("ix_criterion_results_criterion")
    op.drop_table("criterion_results")
    # Only once no table refers to screenings: on SQLite the batch copies the table and drops the old one.
    with op.batch_alter_table("screenings", schema=None) as batch_op:
        batch_op.alter_column("results", existing_type=sa.Text(), nullable=False)


def _opened(keyring: Keyring, screening: sa.Row[Any]) -> Any:
    try:
        return keyring.open(screening.results, _bound_to(screening.application_id, screening.round))
    except SealingError as exc:  # the screening's id, never the value
        raise SealingError(f"screenings.results of {screening.id}: {exc}") from None


def downgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "criterion_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("screening_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("criterion_id", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("missing", JSON, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["screening_id"], ["screenings.id"], name=op.f("fk_criterion_results_screening_id_screenings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_criterion_results")),
    )
    with op.batch_alter_table("criterion_results", schema=None) as batch_op:
        batch_op.create_index("ix_criterion_results_criterion", ["criterion_id", "outcome"], unique=False)
        batch_op.create_index(batch_op.f("ix_criterion_results_screening_id"), ["screening_id"], unique=False)
    last_id = 0
    while batch := _screenings_after(last_id):
        keyring = keyring_of(bind.dialect)
        rows = [
            {
                "screening_id": s.id,
                "position": position,
                "criterion_id": entry["id"],
                "kind": entry["kind"],
                "outcome": entry["outcome"],
                "missing": entry.get("missing", []),
                "note": entry.get("note"),
            }
            for s in batch
            for position, entry in enumerate(_opened(keyring, s)["criteria"])
        ]
        if rows:
            bind.execute(sa.insert(criterion_results), rows)
        last_id = batch[-1].id
    # Not a batch (which on SQLite copies the table and drops the old one, refused while criterion_results
    # refers to it): ALTER TABLE ... DROP COLUMN, which SQLite has had since 3.35.
    op.drop_column("screenings", "results")
