"""Scenario 31 of RELIABILITY.md §7: an invalid state transition is answered 409 with a problem type of
its own, changes nothing, and is audited as a refused attempt, on SQLite and on PostgreSQL.

"Withdraw a decided application": an eligible or enrolled application may be withdrawn (contract v1.1),
so the decided application that may not be is an ineligible one (and one already withdrawn). The
refused attempt's entry is written by services/api/errors.py in a transaction of its own, after the
request's rolled back: action `refused`, the caller as actor, the route tried and the problem type.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Application, AuditEntry, Role, Trial
from services.audit import chain_pending_entries
from services.tokens import list_tokens
from tests.support.applications import post
from tests.support.database import set_targets, status_of
from tests.support.http import assert_problem, auth
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack

APPLICATION = "/api/v1/applications/<application_id>"


def refusals(stack: Stack, entity: str, entity_id: str) -> list[dict[str, Any]]:
    """The trail's `refused` entries about one record, oldest first."""
    chain_pending_entries(stack.db)
    with stack.db.sessions() as session:
        rows = session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.entity == entity, AuditEntry.entity_id == entity_id, AuditEntry.action == "refused"
            )
            .order_by(AuditEntry.seq)
        )
        return [{"actor": e.actor, "actor_role": e.actor_role, **e.changes} for e in rows]


def token_id(stack: Stack, role: Role) -> str:
    with stack.db.sessions() as session:
        return next(t.id for t in list_tokens(session) if t.role == role)


def patch_trial(stack: Stack, body: dict[str, Any]) -> Any:
    return stack.client.patch(f"/api/v1/trials/{TRIAL}", json=body, headers=auth(stack.admin))


def assert_refused(response: Any, kind: str) -> dict[str, Any]:
    problem = assert_problem(response, 409)
    assert problem["type"] == f"/problems/{kind}", problem
    return problem


def test_s31_invalid_transitions_get_409_with_their_problem_type_change_nothing_and_are_audited(
    stack: Stack,
) -> None:
    coordinator, admin = token_id(stack, Role.COORDINATOR), token_id(stack, Role.ADMIN)
    ineligible = decide(stack, screening_id="INELIGIBLE", wagner_grade=5)

    # Withdraw a decided (ineligible) application; enrol an ineligible one.
    problem = assert_refused(
        post(stack, ineligible, "withdraw", {"reason": "moved"}), "invalid-state-transition"
    )
    assert problem["status_now"] == "ineligible"
    assert_refused(post(stack, ineligible, "enroll"), "invalid-state-transition")
    assert status_of(stack, ineligible) == "ineligible"
    assert refusals(stack, "application", ineligible) == [
        {"actor": coordinator, "actor_role": "coordinator", "attempted": f"POST {route}",
         "problem": "/problems/invalid-state-transition", "status_now": "ineligible"}
        for route in (f"{APPLICATION}/withdraw", f"{APPLICATION}/enroll")
    ]  # fmt: skip

    # Enrol into a paused trial: not recruiting, with room left.
    eligible = decide(stack, screening_id="PAUSED")
    assert patch_trial(stack, {"overall_status": "SUSPENDED"}).status_code == 200
    problem = assert_refused(post(stack, eligible, "enroll"), "not-recruiting")
    assert problem["recruitment_status"] == "SUSPENDED"
    assert status_of(stack, eligible) == "eligible"
    [paused] = refusals(stack, "application", eligible)
    assert (paused["actor"], paused["problem"]) == (coordinator, "/problems/not-recruiting")

    # Enrol into a trial whose last place is taken: closed, and full.
    assert patch_trial(stack, {"overall_status": "RECRUITING"}).status_code == 200
    set_targets(stack, trial=1, site=None)
    full = decide(stack, screening_id="FULL")
    assert post(stack, eligible, "enroll").status_code == 200
    assert_refused(post(stack, full, "enroll"), "target-reached")
    assert [r["problem"] for r in refusals(stack, "application", full)] == ["/problems/target-reached"]

    # Lower the cap below what is enrolled.
    assert_refused(patch_trial(stack, {"enrollment_target": 0}), "target-below-enrolled")
    with stack.db.sessions() as session:
        trial = session.get_one(Trial, TRIAL)
        assert (trial.enrollment_target, trial.enrolled_count) == (1, 1)
        enrolled = session.scalars(select(Application.id).where(Application.status == "enrolled")).all()
    assert enrolled == [eligible]
    assert refusals(stack, "trial", TRIAL) == [
        {"actor": admin, "actor_role": "admin", "attempted": "PATCH /api/v1/trials/<trial_id>",
         "problem": "/problems/target-below-enrolled"}
    ]  # fmt: skip
