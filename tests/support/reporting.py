"""Applications in every status, counted as the counting consumer would, and the report that shows them."""

from __future__ import annotations

from typing import Any

from services.reporting.counts import count_application
from tests.support.applications import patch, post
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack


def count_all(stack: Stack, order: list[str]) -> None:
    """Count the applications in `order`, as the counting consumer would on their events."""
    for application_id in order:
        count_application(stack.db, application_id)


def a_lifecycle(stack: Stack) -> list[str]:
    """Applications in every status, counted along the way as the consumer would."""
    eligible = decide(stack, screening_id="A")
    count_all(stack, [eligible])
    enrolled = decide(stack, screening_id="B")
    count_all(stack, [enrolled])
    post(stack, enrolled, "enroll")
    ineligible = decide(stack, screening_id="C", wagner_grade=5, prior_cell_therapy=True)
    review = decide(stack, screening_id="D", hiv_positive=None)
    count_all(stack, [ineligible, review])
    reviewed = decide(stack, screening_id="E", hiv_positive=None)
    count_all(stack, [reviewed])
    post(stack, reviewed, "review", {"decision": "ineligible", "reason": "HIV positive on retest"})
    withdrawn = decide(stack, screening_id="F")
    post(stack, withdrawn, "withdraw", {"reason": "declined"})
    corrected = decide(stack, screening_id="G", wagner_grade=5)
    count_all(stack, [corrected])
    patch(stack, corrected, {"wagner_grade": 2})  # back to submitted
    return [eligible, enrolled, ineligible, review, reviewed, withdrawn, corrected]


def report(stack: Stack, token: str) -> dict[str, Any]:
    """The seeded trial's recruitment report as `token` reads it (which must be allowed)."""
    response = stack.client.get(
        f"/api/v1/trials/{TRIAL}/recruitment", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body
