"""Applications in every status, the counters checked at each step, and the report that shows them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from models import Application
from services.reporting.counts import (
    WITHDRAWN_AFTER_ENROLMENT,
    count_application,
    status_rows,
    withdrawal_reason,
)
from tests.support.applications import patch, post
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack


def counted_as(stack: Stack, status: str) -> int:
    """Applications the counters hold under `status`, every committed change included."""
    with stack.db.sessions() as session:
        return sum(n for _, _, counted, n in status_rows(session) if counted == status)


def count_all(stack: Stack, order: list[str]) -> None:
    """Run the counters' repair on the applications in `order` (it changes nothing while they hold them)."""
    for application_id in order:
        count_application(stack.db, application_id)


def fresh_counts(stack: Stack) -> dict[tuple[str, str], int]:
    """Applications per (site, status), counted now from the applications themselves."""
    with stack.db.sessions() as session:
        rows = session.execute(
            select(Application.site_id, Application.status, func.count()).group_by(
                Application.site_id, Application.status
            )
        ).all()
    return {(site, status): n for site, status, n in rows}


def kept_counts(stack: Stack) -> dict[tuple[str, str], int]:
    """What the counters hold per (site, status), a withdrawal before or after enrolment under `withdrawn`."""
    kept: dict[tuple[str, str], int] = {}
    with stack.db.sessions() as session:
        for _, site, status, n in status_rows(session):
            withdrawn = status == WITHDRAWN_AFTER_ENROLMENT or withdrawal_reason(status) is not None
            key = (site, "withdrawn" if withdrawn else status)
            kept[key] = kept.get(key, 0) + n
    return {key: n for key, n in kept.items() if n}


def assert_counted(stack: Stack) -> None:
    """The counters equal a fresh count, with no consumer or repair run: they change with the status."""
    assert kept_counts(stack) == fresh_counts(stack)


def a_lifecycle(stack: Stack) -> list[str]:
    """Applications in every status; the counters are checked against a fresh count at each step."""
    eligible = decide(stack, screening_id="A")
    assert_counted(stack)
    enrolled = decide(stack, screening_id="B")
    post(stack, enrolled, "enroll")
    assert_counted(stack)
    ineligible = decide(stack, screening_id="C", wagner_grade=5, prior_cell_therapy=True)
    review = decide(stack, screening_id="D", hiv_positive=None)
    assert_counted(stack)
    reviewed = decide(stack, screening_id="E", hiv_positive=None)
    post(stack, reviewed, "review", {"decision": "ineligible", "reason": "HIV positive on retest"})
    assert_counted(stack)
    withdrawn = decide(stack, screening_id="F")
    post(stack, withdrawn, "withdraw", {"reason": "declined"})
    corrected = decide(stack, screening_id="G", wagner_grade=5)
    assert_counted(stack)
    patch(stack, corrected, {"wagner_grade": 2})  # back to submitted
    assert_counted(stack)
    return [eligible, enrolled, ineligible, review, reviewed, withdrawn, corrected]


def report(stack: Stack, token: str) -> dict[str, Any]:
    """The seeded trial's recruitment report as `token` reads it (which must be allowed)."""
    response = stack.client.get(
        f"/api/v1/trials/{TRIAL}/recruitment", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body
