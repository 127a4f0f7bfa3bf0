"""Coded withdrawal reasons and the CONSORT flow of the recruitment report (issue 15, part 3), on
SQLite and PostgreSQL: counted in the withdrawal's transaction, repaired from the history."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import select, text, update

from models import ApplicationHistory, CountedApplication
from models.migrate import alembic_config
from services.reporting.counts import count_application
from tests.support.applications import post
from tests.support.http import assert_problem, auth
from tests.support.reporting import assert_counted
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack


def report(stack: Stack) -> dict[str, Any]:
    answer = stack.client.get(f"/api/v1/trials/{TRIAL}/recruitment", headers=auth(stack.admin))
    assert answer.status_code == 200, answer.get_json()
    body: dict[str, Any] = answer.get_json()
    return body


def test_withdrawals_are_counted_by_coded_reason_in_the_consort_flow(stack: Stack) -> None:
    declined = decide(stack, screening_id="DECLINED")
    unreachable = decide(stack, screening_id="UNREACHABLE")
    moved = decide(stack, screening_id="MOVED")
    enrolled = decide(stack, screening_id="ENROLLED")
    decide(stack, screening_id="HIV", hiv_positive=True)
    decide(stack, screening_id="WAITING")
    assert post(stack, declined, "withdraw", {"code": "declined"}).status_code == 200
    assert (
        post(stack, unreachable, "withdraw", {"code": "not_reachable", "reason": "3 calls"}).status_code
        == 200
    )
    assert post(stack, moved, "withdraw", {"reason": "moved abroad"}).status_code == 200  # the v1 body: other
    assert post(stack, enrolled, "enroll").status_code == 200
    assert post(stack, enrolled, "withdraw", {"code": "consent_withdrawn"}).status_code == 200
    assert_counted(stack)
    body = report(stack)
    assert body["counts"]["withdrawn"] == 3 and body["withdrawn_after_enrolment"] == 1
    consort = body["consort"]
    assert (consort["assessed"], consort["enrolled"], consort["withdrawn_after_enrolment"]) == (6, 1, 1)
    assert consort["excluded"]["ineligible"] == 1
    assert consort["excluded"]["reasons"] == [{"criterion_id": "E11", "count": 1, "suppressed": []}]
    assert consort["excluded"]["not_enrolled"] == [
        {"reason": "declined", "count": 1, "suppressed": []},
        {"reason": "not_reachable", "count": 1, "suppressed": []},
        {"reason": "other", "count": 1, "suppressed": []},
        {"reason": "awaiting_enrolment", "count": 1, "suppressed": []},
    ]
    # The seeded trial randomises: the one participant was allocated; an admin sees it per arm.
    allocated = consort["allocated"]
    assert [arm["arm_id"] for arm in allocated] == [
        "allogeneic-endothelial-progenitor-cells",
        "clinical-standard-treatment",
    ]
    assert sum(arm["count"] for arm in allocated) == 1
    with stack.db.sessions() as session:
        codes = session.scalars(
            select(ApplicationHistory.reason_code).where(ApplicationHistory.status == "withdrawn")
        ).all()
    assert sorted(codes) == ["consent_withdrawn", "declined", "not_reachable", "other"]


def test_other_needs_free_text_and_a_code_alone_is_enough(stack: Stack) -> None:
    application_id = decide(stack, screening_id="X")
    assert_problem(post(stack, application_id, "withdraw", {"code": "other"}), 422, "reason")
    assert_problem(post(stack, application_id, "withdraw", {}), 422, "reason")
    assert_problem(post(stack, application_id, "withdraw", {"code": "bored"}), 422, "code")
    assert post(stack, application_id, "withdraw", {"code": "investigator_decision"}).status_code == 200


def test_the_repair_counts_a_withdrawal_under_the_reason_its_history_holds(stack: Stack) -> None:
    application_id = decide(stack, screening_id="REPAIRED")
    assert post(stack, application_id, "withdraw", {"code": "declined"}).status_code == 200
    with stack.db.transaction() as session:  # the counters lose track, as after a hand-made fix
        session.execute(
            update(CountedApplication)
            .where(CountedApplication.application_id == application_id)
            .values(status="eligible")
        )
    assert count_application(stack.db, application_id)
    with stack.db.sessions() as session:
        assert session.get_one(CountedApplication, application_id).status == "wd:declined"
    assert not count_application(stack.db, application_id)  # nothing more to repair


def test_withdrawals_from_before_the_codes_become_other_and_go_back_on_a_downgrade(stack: Stack) -> None:
    application_id = decide(stack, screening_id="OLD")
    assert post(stack, application_id, "withdraw", {"code": "declined"}).status_code == 200
    config = alembic_config(stack.db)
    with stack.db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0019")
    with stack.db.engine.connect() as connection:
        assert connection.execute(text("SELECT status FROM counted_applications")).scalars().all() == [
            "withdrawn"
        ]
    with stack.db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with stack.db.engine.connect() as connection:
        assert connection.execute(text("SELECT status FROM counted_applications")).scalars().all() == [
            "wd:other"
        ]
        codes = connection.execute(
            text("SELECT reason_code FROM application_history WHERE status = 'withdrawn'")
        )
        assert codes.scalars().all() == ["other"]
    assert {"reason": "other", "count": 1, "suppressed": []} in report(stack)["consort"]["excluded"][
        "not_enrolled"
    ]
