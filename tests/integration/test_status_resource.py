"""Scenario 33 of RELIABILITY.md §7, its asynchronous half: after the 202 the status resource answers
at once (`submitted`), and shows the decision within its bound, with the real worker and scheduler, on
SQLite with the embedded broker and on PostgreSQL with Redis. The bound is the one a lost message
would still meet: ACCRUAL_SWEEP_AFTER_SECONDS plus a sweep interval, plus a margin for the task; the
wait is a deadline, not a measurement of speed. (The 404 half: test_intake_api.py's test_s33_...)
"""

from __future__ import annotations

import pytest

from tests.support.applicants import eligible_applicant
from tests.support.http import auth
from tests.support.pipeline import start_pipeline
from tests.support.processes import Processes
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
TASK_MARGIN_SECONDS = 30


def test_s33_the_status_resource_shows_submitted_at_once_and_the_decision_within_its_bound(
    backend: Stack, processes: Processes
) -> None:
    stack = backend
    start_pipeline(processes, stack)
    bound = stack.settings.sweep_after_seconds + stack.settings.sweep_interval_seconds + TASK_MARGIN_SECONDS
    changes = ({}, {"hiv_positive": None}, {"wagner_grade": 5})
    ids = []
    for number, change in enumerate(changes):
        accepted = stack.submit(eligible_applicant(f"STATUS-{number}", **change))
        assert accepted.status_code == 202, accepted.get_json()
        status = stack.client.get(accepted.headers["Location"], headers=auth(stack.coordinator))
        assert status.status_code == 200 and status.get_json()["status"] in (
            "submitted",
            "eligible",
            "ineligible",
            "needs_review",
        )
        ids.append(accepted.get_json()["id"])

    def decisions() -> list[str] | None:
        shown = [
            stack.client.get(f"/api/v1/applications/{i}", headers=auth(stack.coordinator)).get_json()[
                "decision"
            ]
            for i in ids
        ]
        return shown if all(shown) else None

    shown = wait_until(
        decisions, timeout=bound, interval=0.5, what="decisions: " + processes.log("worker")[-1500:]
    )
    assert shown == ["eligible", "needs_review", "ineligible"]
