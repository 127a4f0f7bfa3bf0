"""Screening as a worker would run it, here in the test's process."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Event
from services.applications.screening import screen_application
from tests.support.applicants import eligible_applicant
from tests.support.stack import Stack


def screen(stack: Stack, application_id: str) -> None:
    """Run the screening the worker would run for the application's latest event, in this process."""
    with stack.db.sessions() as session:
        event_id = session.scalars(
            select(Event.id).where(Event.application_id == application_id).order_by(Event.seq.desc())
        ).first()
    assert event_id is not None, f"application {application_id} has no event"
    screen_application(stack.db, application_id, event_id, 5)


def decide(stack: Stack, **changes: Any) -> str:
    """Submit an eligible applicant with `changes` and screen it here; the application's id."""
    response = stack.submit(eligible_applicant(**changes))
    assert response.status_code == 202, response.get_json()
    application_id: str = response.get_json()["id"]
    screen(stack, application_id)
    return application_id
