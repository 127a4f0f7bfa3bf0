"""Review, enrolment and withdrawal on SQLite and PostgreSQL, including the race for the last places."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

from sqlalchemy import func, select, update

from models import Application, Event, Site, Trial
from tests.conftest import TRIAL, Stack, eligible_applicant
from tests.integration.test_amendments import decide
from tests.integration.test_intake_api import assert_problem


def post(stack: Stack, application_id: str, action: str, body: Any = None, token: str | None = None) -> Any:
    return stack.client.post(
        f"/api/v1/applications/{application_id}/{action}",
        json=body,
        headers={"Authorization": f"Bearer {token or stack.coordinator}"},
    )


def set_targets(stack: Stack, trial: int | None, site: int | None) -> None:
    with stack.db.transaction() as session:
        session.execute(update(Trial).where(Trial.trial_id == TRIAL).values(enrollment_target=trial))
        session.execute(update(Site).where(Site.trial_id == TRIAL).values(enrollment_target=site))


def events(stack: Stack, event_type: str) -> list[dict[str, Any]]:
    with stack.db.sessions() as session:
        return [
            dict(e.data)
            for e in session.scalars(select(Event).where(Event.type == event_type).order_by(Event.seq))
        ]


def test_an_investigator_reviews_an_application_that_needs_review(stack: Stack) -> None:
    application_id = decide(stack, hiv_positive=None)
    assert_problem(post(stack, application_id, "review", {"decision": "eligible"}), 422, "reason")
    response = post(
        stack, application_id, "review", {"decision": "eligible", "reason": "HIV test negative on file"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["decision"]) == ("eligible", "eligible")
    assert body["history"][-1]["reason"] == "HIV test negative on file"
    assert events(stack, "application.reviewed") == [{"status": "eligible"}]
    problem = assert_problem(
        post(stack, application_id, "review", {"decision": "ineligible", "reason": "x"}), 409
    )
    assert "eligible" in problem["detail"] and problem["status_now"] == "eligible"


def test_enrolling_an_eligible_applicant_counts_it_once(stack: Stack) -> None:
    application_id = decide(stack)
    response = post(stack, application_id, "enroll")
    assert response.status_code == 200 and response.get_json()["status"] == "enrolled"
    assert_problem(post(stack, application_id, "enroll"), 409)
    trial = stack.client.get(f"/api/v1/trials/{TRIAL}", headers={"Authorization": f"Bearer {stack.admin}"})
    assert trial.get_json()["enrolled_count"] == 1
    with stack.db.sessions() as session:
        assert session.get_one(Trial, TRIAL).enrolled_count == 1
    assert events(stack, "application.enrolled") == [{"status": "enrolled"}]


def test_only_eligible_applications_are_enrolled(stack: Stack) -> None:
    application_id = decide(stack, wagner_grade=5)
    problem = assert_problem(post(stack, application_id, "enroll"), 409)
    assert "ineligible" in problem["detail"]


def test_withdrawal_needs_a_reason_and_an_open_application(stack: Stack) -> None:
    application_id = decide(stack)
    assert_problem(post(stack, application_id, "withdraw", {}), 422, "reason")
    response = post(stack, application_id, "withdraw", {"reason": "moved away"})
    assert response.status_code == 200 and response.get_json()["status"] == "withdrawn"
    assert_problem(post(stack, application_id, "withdraw", {"reason": "again"}), 409)
    enrolled = decide(stack, screening_id="E")
    post(stack, enrolled, "enroll")
    assert_problem(post(stack, enrolled, "withdraw", {"reason": "x"}), 409)


def test_the_last_place_at_a_site_closes_the_site(stack: Stack) -> None:
    set_targets(stack, trial=27, site=1)
    first, second = decide(stack, screening_id="A"), decide(stack, screening_id="B")
    assert post(stack, first, "enroll").status_code == 200
    assert_problem(post(stack, second, "enroll"), 409)
    sites = stack.client.get(
        f"/api/v1/trials/{TRIAL}/sites", headers={"Authorization": f"Bearer {stack.admin}"}
    )
    assert sites.get_json()["items"][0]["status"] == "ACTIVE_NOT_RECRUITING"
    assert events(stack, "site.status_changed")[0]["to"] == "ACTIVE_NOT_RECRUITING"
    assert_problem(stack.submit(eligible_applicant("C")), 409)


def test_the_last_place_of_a_trial_closes_the_trial(stack: Stack) -> None:
    set_targets(stack, trial=1, site=None)
    first, second = decide(stack, screening_id="A"), decide(stack, screening_id="B")
    assert post(stack, first, "enroll").status_code == 200
    problem = assert_problem(post(stack, second, "enroll"), 409)
    assert "the trial" in problem["detail"]
    with stack.db.sessions() as session:
        assert session.get_one(Trial, TRIAL).overall_status == "ACTIVE_NOT_RECRUITING"
    assert events(stack, "trial.target_reached") == [{"enrolled": 1}]
    assert events(stack, "trial.status_changed") == [
        {"from": "RECRUITING", "to": "ACTIVE_NOT_RECRUITING", "reason": "target_reached"}
    ]


def test_twenty_racing_enrolments_fill_exactly_the_last_three_places(stack: Stack) -> None:
    ids = [decide(stack, screening_id=f"R{n}") for n in range(20)]
    set_targets(stack, trial=None, site=3)
    barrier = Barrier(len(ids))

    def enrol(application_id: str) -> int:
        client = stack.app.test_client()
        barrier.wait()
        response = client.post(
            f"/api/v1/applications/{application_id}/enroll",
            headers={"Authorization": f"Bearer {stack.coordinator}"},
        )
        return int(response.status_code)

    with ThreadPoolExecutor(len(ids)) as pool:
        statuses = list(pool.map(enrol, ids))
    assert sorted(statuses) == [200] * 3 + [409] * 17
    with stack.db.sessions() as session:
        enrolled = session.scalar(
            select(func.count()).select_from(Application).where(Application.status == "enrolled")
        )
        site = session.scalars(select(Site).where(Site.trial_id == TRIAL)).one()
    assert enrolled == site.enrolled_count == 3 and site.status == "ACTIVE_NOT_RECRUITING"
