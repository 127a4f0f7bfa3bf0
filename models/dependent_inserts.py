"""A new row and the rows that depend on it, written together: in one statement on PostgreSQL.

Intake writes an application and, with it, its history, its event, its counts and its audit entry. Sent
as one INSERT each, that is a round trip and a pass through the driver per row; on PostgreSQL one
statement of data-modifying CTEs writes them all, each dependent as `INSERT ... SELECT ... FROM` the
new row's `RETURNING`, so none is written without it. The new row is inserted `ON CONFLICT DO NOTHING`
on its unique key: an existing row is not an error, and so never a line in the server's log naming the
key's values (a screening id, in intake's case).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, bindparam, cast, insert, select, union_all
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CTE


@dataclass(frozen=True)
class Dependents:
    """Rows of one table that are written only with the new row; every row has the same keys."""

    table: Table
    rows: Sequence[Mapping[str, Any]]


def insert_unless_present(
    session: Session,
    table: Table,
    row: Mapping[str, Any],
    unique: Sequence[str],
    dependents: Sequence[Dependents],
) -> bool:
    """Insert `row` unless a row with the same `unique` columns exists, and with it every dependent row;
    True when it was inserted, False (and nothing written) when it existed.

    On PostgreSQL one statement; on SQLite, whose writes are serialised and whose statements cost no
    round trip, a statement per table."""
    written = [dependent for dependent in dependents if dependent.rows]
    if session.get_bind().dialect.name == "postgresql":
        return _in_one_statement(session, table, row, unique, written)
    inserted = session.execute(
        sqlite_insert(table).values(dict(row)).on_conflict_do_nothing(index_elements=unique)
    )
    if not getattr(inserted, "rowcount", 0):
        return False
    for dependent in written:
        session.execute(insert(dependent.table), [dict(r) for r in dependent.rows])
    return True


def _in_one_statement(
    session: Session,
    table: Table,
    row: Mapping[str, Any],
    unique: Sequence[str],
    dependents: Sequence[Dependents],
) -> bool:
    shape = (table, tuple(row), tuple(unique), tuple(_shape(d) for d in dependents))
    statement = _STATEMENTS.get(shape)
    if statement is None:
        statement = _STATEMENTS[shape] = _statement(*shape)
    parameters = {_anchor_parameter(name): value for name, value in row.items()}
    for n, dependent in enumerate(dependents):
        for i, dependent_row in enumerate(dependent.rows):
            parameters.update({_parameter(n, i, name): value for name, value in dependent_row.items()})
    return session.execute(statement, parameters).first() is not None


# Built once per shape (tables, columns, rows per table): building and hashing the expression each time
# cost a quarter of the statement's time. Intake has a handful of shapes.
Shape = tuple[Table, tuple[str, ...], int]
_STATEMENTS: dict[tuple[Table, tuple[str, ...], tuple[str, ...], tuple[Shape, ...]], Select[Any]] = {}


def _shape(dependent: Dependents) -> Shape:
    return dependent.table, tuple(dependent.rows[0]), len(dependent.rows)


def _anchor_parameter(name: str) -> str:
    return f"new_{name}"


def _parameter(n: int, i: int, name: str) -> str:
    return f"d{n}_{i}_{name}"


def _statement(
    table: Table, columns: tuple[str, ...], unique: tuple[str, ...], dependents: tuple[Shape, ...]
) -> Select[Any]:
    [key] = table.primary_key.columns
    new = (
        postgresql_insert(table)
        .values({name: bindparam(_anchor_parameter(name), type_=table.c[name].type) for name in columns})
        .on_conflict_do_nothing(index_elements=unique)
        .returning(key)
        .cte("new_row")
    )
    ctes = [_dependent(new, n, shape) for n, shape in enumerate(dependents)]
    return select(new.c[key.name]).add_cte(*ctes)


def _dependent(new: CTE, n: int, shape: Shape) -> CTE:
    """INSERT the dependent rows, each a SELECT from the new row: no new row, no dependent row.

    Each value is cast to its column's type: in a UNION of several rows PostgreSQL would otherwise
    resolve an untyped parameter as text, which a JSON or date column refuses."""
    table, columns, count = shape

    def value(i: int, name: str) -> Any:
        column_type = table.c[name].type
        return cast(bindparam(_parameter(n, i, name), type_=column_type), column_type).label(name)

    selects = [select(*[value(i, name) for name in columns]).select_from(new) for i in range(count)]
    source = selects[0] if count == 1 else union_all(*selects)
    return insert(table).from_select(list(columns), source).cte(f"dependent_{n}")
