"""A NUL character anywhere in a request is a 4xx naming where it was, never a 500 (PostgreSQL's text
cannot hold one, and C-level readers stop at it) and never half-stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from models import Application, Event
from tests.support.http import assert_problem
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack


def _counts(stack: Stack) -> tuple[int, int]:
    with stack.db.sessions() as session:
        applications = session.scalar(select(func.count()).select_from(Application)) or 0
        events = session.scalar(select(func.count()).select_from(Event)) or 0
    return applications, events


def _post(stack: Stack, path: str, body: Any, token: str) -> Any:
    return stack.client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("withdraw", {"reason": "moved\u0000away"}, "reason"),
        ("review", {"decision": "eligible", "reason": "HIV test\u0000negative"}, "reason"),
    ],
)
def test_a_nul_in_a_free_text_field_is_a_422_naming_it_and_changes_nothing(
    stack: Stack, action: str, body: dict[str, Any], field: str
) -> None:
    application_id = decide(stack, hiv_positive=None)
    before = _counts(stack)
    response = _post(stack, f"/api/v1/applications/{application_id}/{action}", body, stack.coordinator)
    assert_problem(response, 422, field)
    assert _counts(stack) == before


def test_a_nul_in_an_applicants_observation_or_a_key_is_refused_before_intake(stack: Stack) -> None:
    before = _counts(stack)
    body = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": {"screening_id": "BJ\u00000001"}}
    assert_problem(
        _post(stack, "/api/v1/applications", body, stack.coordinator), 422, "applicant.screening_id"
    )
    body = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": {"abi\u0000": 0.5}}
    assert_problem(_post(stack, "/api/v1/applications", body, stack.coordinator), 422, "applicant.abi\\u0000")
    assert _counts(stack) == before


def test_a_nul_in_a_query_parameter_is_a_422_and_in_a_path_a_404(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.admin}"}
    response = stack.client.get("/api/v1/applications?screening_id=BJ%000001", headers=headers)
    assert_problem(response, 422, "screening_id")
    response = stack.client.get("/api/v1/applications?trial_id=NCT%00", headers=headers)
    assert_problem(response, 422, "trial_id")
    response = stack.client.get("/api/v1/trials/NCT06359912%00", headers=headers)
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
