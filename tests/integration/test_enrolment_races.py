"""Scenarios 20 and 21 of RELIABILITY.md §7: enrolment requests racing over real HTTP, from separate
client processes (tests/support/racing.py), against the real API (`accrual api`: gunicorn, two worker
processes), on SQLite and on PostgreSQL.

20. The last place: fifty coordinators, each with a token of their own, enrol fifty eligible applicants
    into a trial with one place left: one 200 and forty-nine 409 `target-reached`; afterwards the
    trial's enrolled count, its target and the number of enrolled applications are equal. The
    scenario's "repeat 100 times" is a benchmark: the test runs ROUNDS rounds, the target raised by
    one before each (over the admin API, which re-opens the trial the last place closed).
21. A double click: the same enrol request of one application sent 2 and 10 times at once gives one
    enrolment (one enrolled row, one `application.enrolled` event, the counter moved by one); every
    other answer is the winner's 200 body or 409 `invalid-state-transition` naming `enrolled`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Application, AuditEntry, Role, Trial
from services.audit import chain_pending_entries
from services.tokens import create_token
from tests.support.database import events, set_targets
from tests.support.http import auth
from tests.support.processes import Processes, start_api
from tests.support.racing import Answer, race_posts
from tests.support.screening import decide
from tests.support.servers import free_port
from tests.support.stack import TRIAL, Stack

pytestmark = pytest.mark.slow
RACERS = 50
ROUNDS = 3


@pytest.fixture
def api(stack: Stack, processes: Processes) -> Iterator[str]:
    """`accrual api` on the stack's database: enough threads that no racer is shed as overloaded."""
    environment = {
        **stack.env(),
        "ACCRUAL_API_WORKERS": "2",
        "ACCRUAL_API_THREADS": "8",
        "ACCRUAL_API_MAX_QUEUE_SECONDS": "120",
    }
    yield start_api(processes, environment, free_port())


def enrol_url(base: str, application_id: str) -> str:
    return f"{base}/api/v1/applications/{application_id}/enroll"


def problem_types(answers: list[Answer]) -> Counter[str]:
    return Counter(a.body["type"] for a in answers if a.status != 200)


def eligible_ids(stack: Stack, count: int) -> list[str]:
    with stack.db.sessions() as session:
        return list(
            session.scalars(
                select(Application.id)
                .where(Application.status == "eligible")
                .order_by(Application.id)
                .limit(count)
            )
        )


def enrolment_counts(stack: Stack) -> tuple[int, int | None, int]:
    """(the trial's enrolled count, its target, enrolled applications)."""
    with stack.db.sessions() as session:
        trial = session.get_one(Trial, TRIAL)
        rows = session.scalar(
            select(func.count()).select_from(Application).where(Application.status == "enrolled")
        )
        return trial.enrolled_count, trial.enrollment_target, int(rows or 0)


def refused_entries(stack: Stack) -> int:
    chain_pending_entries(stack.db)
    with stack.db.sessions() as session:
        return int(session.scalar(select(func.count()).where(AuditEntry.action == "refused")) or 0)


def test_s20_fifty_processes_racing_for_the_last_place_give_one_enrolment_and_49_target_reached(
    stack: Stack, api: str
) -> None:
    for n in range(RACERS + ROUNDS - 1):  # each round enrols one: the last still has fifty to race
        decide(stack, screening_id=f"RACE-{n}")
    with stack.db.transaction() as session:
        tokens = [create_token(session, Role.COORDINATOR, [stack.site_id]) for _ in range(RACERS)]
    set_targets(stack, trial=1, site=None)
    for round_ in range(1, ROUNDS + 1):
        if round_ > 1:  # one more place, over the API: it re-opens the trial the last place closed
            opened = stack.client.patch(
                f"/api/v1/trials/{TRIAL}", json={"enrollment_target": round_}, headers=auth(stack.admin)
            )
            assert opened.get_json()["overall_status"] == "RECRUITING", opened.get_json()
        racers = eligible_ids(stack, RACERS)
        assert len(racers) == RACERS
        answers = race_posts([(enrol_url(api, a), t) for a, t in zip(racers, tokens, strict=True)])
        assert sorted(a.status for a in answers) == [200] + [409] * (RACERS - 1), problem_types(answers)
        assert problem_types(answers) == {"/problems/target-reached": RACERS - 1}
        assert enrolment_counts(stack) == (round_, round_, round_)
    assert refused_entries(stack) == (RACERS - 1) * ROUNDS  # every refused attempt audited


def test_s21_one_enrol_request_sent_several_times_at_once_enrols_once(stack: Stack, api: str) -> None:
    for clicks in (2, 10):
        application_id = decide(stack, screening_id=f"DOUBLE-CLICK-{clicks}")
        answers = race_posts([(enrol_url(api, application_id), stack.coordinator)] * clicks)
        won = [a for a in answers if a.status == 200]
        assert len(won) >= 1 and all(a.body == won[0].body for a in won)
        assert won[0].body["status"] == "enrolled"
        for lost in (a for a in answers if a.status != 200):
            assert (lost.status, lost.body["type"]) == (409, "/problems/invalid-state-transition"), lost
            assert lost.body["status_now"] == "enrolled"
        assert_one_enrolment_change(stack, application_id)
    enrolled, _target, rows = enrolment_counts(stack)
    assert (enrolled, rows) == (2, 2)
    assert events(stack, "application.enrolled") == [{"status": "enrolled"}] * 2


def assert_one_enrolment_change(stack: Stack, application_id: str) -> None:
    """The trail holds one eligible -> enrolled change of the application."""
    chain_pending_entries(stack.db)
    with stack.db.sessions() as session:
        changes: list[dict[str, Any]] = list(
            session.scalars(
                select(AuditEntry.changes).where(
                    AuditEntry.entity == "application",
                    AuditEntry.entity_id == application_id,
                    AuditEntry.action == "change",
                )
            )
        )
    assert [c["status"] for c in changes if "status" in c].count(["eligible", "enrolled"]) == 1
