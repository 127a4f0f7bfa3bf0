"""What the database holds, read or set directly rather than over the API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, func, select, update

from models import Application, ApplicationHistory, Event, Site, Trial
from tests.support.stack import TRIAL, Stack


@contextmanager
def counting_statements(stack: Stack) -> Iterator[list[str]]:
    """Every SQL statement sent to the stack's database while inside."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(stack.db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(stack.db.engine, "before_cursor_execute", record)


def stored(stack: Stack) -> tuple[int, int, int]:
    """(applications, history rows, events) in the database."""
    with stack.db.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Application)) or 0,
            session.scalar(select(func.count()).select_from(ApplicationHistory)) or 0,
            session.scalar(select(func.count()).select_from(Event)) or 0,
        )


def status_of(stack: Stack, application_id: str) -> str:
    """The application's status as stored."""
    with stack.db.sessions() as session:
        return session.get_one(Application, application_id).status


def events(stack: Stack, event_type: str) -> list[dict[str, Any]]:
    """The data of every event of `event_type`, oldest first."""
    with stack.db.sessions() as session:
        return [
            dict(e.data)
            for e in session.scalars(select(Event).where(Event.type == event_type).order_by(Event.seq))
        ]


def set_targets(stack: Stack, trial: int | None, site: int | None) -> None:
    """Set the seeded trial's enrolment target and each of its sites'."""
    with stack.db.transaction() as session:
        session.execute(update(Trial).where(Trial.trial_id == TRIAL).values(enrollment_target=trial))
        session.execute(update(Site).where(Site.trial_id == TRIAL).values(enrollment_target=site))
