"""A backlog in the outbox, written fast, and the plan the database picks for the relay's claim."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import String, cast, func, insert, literal, select, text

from models import Event
from models.base import utcnow
from services.events.catalogue import ApplicationEvent, EventPayload
from services.events.outbox import due_events, event_row
from tests.support.stack import TRIAL, Stack


def insert_events(stack: Stack, count: int, payload: EventPayload, **values: Any) -> None:
    """`count` events of `payload` in one INSERT ... SELECT over a series the database generates (a
    hundred thousand in well under a second, where an executemany of as many rows takes seconds):
    each application event of its own application, `values` overriding outbox columns (status,
    published_at...)."""
    per_application = isinstance(payload, ApplicationEvent)
    row = event_row(payload, trial_id=TRIAL, site_id=None, application_id="app" if per_application else None)
    row |= values
    numbers = _series(stack, count)
    call = secrets.token_hex(6)  # unique to this call, so that the ids of several calls never meet
    made: dict[str, Any] = {"id": literal(f"evt_{call}_") + cast(numbers.c.n, String)}
    if per_application:
        made["application_id"] = literal(f"app_{call}_") + cast(numbers.c.n, String)
    table = Event.__table__
    columns = [name for name in row if name not in made] + list(made)
    selected = [
        made[name] if name in made else literal(row[name], type_=table.c[name].type).label(name)
        for name in columns
    ]
    with stack.db.transaction() as session:
        session.execute(insert(Event).from_select(columns, select(*selected).select_from(numbers)))


def _series(stack: Stack, count: int) -> Any:
    """The numbers 1 to `count` as a selectable with column `n`."""
    if stack.db.engine.dialect.name == "postgresql":
        return func.generate_series(1, count).table_valued("n").render_derived(name="numbers")
    start = select(literal(1).label("n")).cte("numbers", recursive=True)
    return start.union_all(select(start.c.n + 1).where(start.c.n < count))


def claim_plan(stack: Stack) -> str:
    """The database's plan for the relay's claim, one line per step, after fresh statistics."""
    dialect = stack.db.engine.dialect
    sql = str(due_events(utcnow(), 100).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    postgres = dialect.name == "postgresql"
    with stack.db.engine.begin() as connection:
        connection.execute(text("ANALYZE events" if postgres else "ANALYZE"))
        rows = connection.execute(text(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + sql)).all()
    return "\n".join(str(row[0] if postgres else row[-1]) for row in rows)


def reads_the_due_index(stack: Stack, plan: str) -> bool:
    """Whether the claim reads the events off ix_events_due (status, next_attempt_at, seq), not the table
    in seq order (past every published row)."""
    if stack.db.engine.dialect.name == "postgresql":
        return "Index Scan using ix_events_due on events " in plan and "pk_events" not in plan
    lines = plan.splitlines()
    return "SEARCH events USING INDEX ix_events_due (status=? AND next_attempt_at<?)" in lines and (
        "SCAN events" not in lines
    )
