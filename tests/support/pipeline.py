"""The whole pipeline with real processes: submit, start a worker and the scheduler, wait for decisions."""

from __future__ import annotations

from sqlalchemy import func, select

from models import Application, Event, Screening
from tests.support.applicants import eligible_applicant
from tests.support.processes import Processes
from tests.support.stack import Stack


def start_pipeline(processes: Processes, stack: Stack, **env: str) -> None:
    """Start a worker and the scheduler (whose relay publishes) on the stack's state."""
    environment = {**stack.env(), **env}
    processes.start("worker", ["worker"], environment)
    processes.start("beat", ["beat"], environment)


def submit_many(stack: Stack, count: int, prefix: str = "S") -> list[str]:
    """Submit `count` eligible applicants; their applications' ids."""
    ids = []
    for n in range(count):
        response = stack.submit(eligible_applicant(f"{prefix}-{n}"))
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def decided(stack: Stack, ids: list[str]) -> bool:
    """Whether every one of the applications has been decided."""
    with stack.db.sessions() as session:
        undecided = session.scalar(
            select(func.count())
            .select_from(Application)
            .where(Application.id.in_(ids), Application.decided_at.is_(None))
        )
    return undecided == 0


def assert_decided_exactly_once(stack: Stack, ids: list[str]) -> None:
    """Each application has one screening and one application.screened event, however often delivered."""
    with stack.db.sessions() as session:
        screenings = dict(
            session.execute(
                select(Screening.application_id, func.count())
                .where(Screening.application_id.in_(ids))
                .group_by(Screening.application_id)
            ).all()
        )
        screened = dict(
            session.execute(
                select(Event.application_id, func.count())
                .where(Event.application_id.in_(ids), Event.type == "application.screened")
                .group_by(Event.application_id)
            ).all()
        )
    assert screenings == dict.fromkeys(ids, 1)
    assert screened == dict.fromkeys(ids, 1)
