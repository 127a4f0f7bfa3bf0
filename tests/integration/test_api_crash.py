"""Scenario 9 of RELIABILITY.md section 7: the API process dies between the intake's commit and its
answer. The client, seeing its connection closed with no answer, sends the same request with the same
Idempotency-Key to a fresh API process and gets the 202 the first request would have had, and exactly one
application exists. Real `accrual api` processes over real HTTP, on SQLite and on PostgreSQL.

The dying process is `tests.support.dying_api`: the real app, wrapped by the test so that the process
exits as soon as the app has answered 202 (nothing of it in the product).
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from models import Application
from tests.support.applicants import eligible_applicant
from tests.support.processes import Processes, start_api
from tests.support.servers import free_port
from tests.support.stack import TRIAL, Stack

pytestmark = pytest.mark.slow
KEY = '"crash-between-commit-and-answer"'


def post_application(base: str, stack: Stack, applicant: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """POST the applicant with the test's Idempotency-Key over a connection of its own: the status, the
    headers and the body of the answer."""
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=60)
    body = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": applicant}
    headers = {
        "Authorization": f"Bearer {stack.coordinator}",
        "Content-Type": "application/json",
        "Idempotency-Key": KEY,
    }
    try:
        connection.request("POST", "/api/v1/applications", json.dumps(body), headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def stored_ids(stack: Stack, screening_id: str) -> list[str]:
    with stack.db.sessions() as session:
        return list(session.scalars(select(Application.id).where(Application.screening_id == screening_id)))


def test_s09_a_retry_after_the_api_died_between_commit_and_answer_gets_the_original_202_and_one_application(
    stack: Stack, processes: Processes
) -> None:
    environment = {**stack.env(), "ACCRUAL_API_WORKERS": "1"}
    applicant = eligible_applicant("CRASH-1")
    dying = start_api(processes, environment, free_port(), "dying-api", "tests.support.dying_api")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        post_application(dying, stack, applicant)
    [committed] = stored_ids(stack, "CRASH-1")  # committed, though never answered
    processes.children[-1].terminate()  # the dying API's master, which would start a new server process
    processes.children[-1].wait(30)

    fresh = start_api(processes, environment, free_port())
    (status, headers, body), again = (post_application(fresh, stack, applicant) for _ in range(2))
    assert status == 202 and headers["Idempotent-Replayed"] == "true"
    assert (again[0], again[2]) == (202, body)  # the one stored answer, byte for byte
    answer = json.loads(body)
    assert answer["id"] == committed and answer["status"] == "submitted"
    assert headers["Location"].endswith(f"/api/v1/applications/{committed}")
    assert stored_ids(stack, "CRASH-1") == [committed]
