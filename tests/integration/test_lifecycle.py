"""Review, enrolment and withdrawal on SQLite and PostgreSQL, including the race for the last places."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

from sqlalchemy import func, select

from models import Application, Site, Trial
from services.reporting.counts import count_application
from tests.support.applicants import eligible_applicant
from tests.support.applications import post
from tests.support.database import events, set_targets
from tests.support.http import assert_problem
from tests.support.reporting import report
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack


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


def test_withdrawal_needs_a_reason_and_an_open_or_enrolled_application(stack: Stack) -> None:
    application_id = decide(stack)
    assert_problem(post(stack, application_id, "withdraw", {}), 422, "reason")
    response = post(stack, application_id, "withdraw", {"reason": "moved away"})
    assert response.status_code == 200 and response.get_json()["status"] == "withdrawn"
    assert_problem(post(stack, application_id, "withdraw", {"reason": "again"}), 409)
    enrolled = decide(stack, screening_id="E")
    post(stack, enrolled, "enroll")
    # Contract v1.1: an enrolled participant can be withdrawn too, with a reason.
    assert_problem(post(stack, enrolled, "withdraw", {}), 422, "reason")
    response = post(stack, enrolled, "withdraw", {"reason": "consent withdrawn"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "withdrawn" and body["decision"] == "eligible"
    assert [h["status"] for h in body["history"]][-2:] == ["enrolled", "withdrawn"]
    assert body["history"][-1]["reason"] == "consent withdrawn"
    assert events(stack, "application.withdrawn") == [{"status": "withdrawn"}] * 2
    problem = assert_problem(post(stack, enrolled, "withdraw", {"reason": "again"}), 409)
    assert problem["status_now"] == "withdrawn" and "enrolled" in problem["detail"]


def test_a_withdrawal_after_enrolment_frees_no_place(stack: Stack) -> None:
    set_targets(stack, trial=27, site=1)
    first, second = decide(stack, screening_id="A"), decide(stack, screening_id="B")
    assert post(stack, first, "enroll").status_code == 200
    assert post(stack, first, "withdraw", {"reason": "consent withdrawn"}).status_code == 200
    with stack.db.sessions() as session:
        assert session.get_one(Trial, TRIAL).enrolled_count == 1
        site = session.scalars(select(Site).where(Site.trial_id == TRIAL)).one()
        assert (site.enrolled_count, site.status) == (1, "ACTIVE_NOT_RECRUITING")
    admin = {"Authorization": f"Bearer {stack.admin}"}
    assert stack.client.get(f"/api/v1/trials/{TRIAL}", headers=admin).get_json()["enrolled_count"] == 1
    sites = stack.client.get(f"/api/v1/trials/{TRIAL}/sites", headers=admin).get_json()["items"]
    assert [s["enrolled_count"] for s in sites] == [1]
    assert assert_problem(post(stack, second, "enroll"), 409)["type"] == "/problems/target-reached"


def test_a_withdrawal_after_enrolment_is_reported_apart_and_stays_enrolled_ever(stack: Stack) -> None:
    left, late, stays, before = (decide(stack, screening_id=s) for s in ("A", "B", "C", "D"))
    for application_id in (left, late, stays):
        assert post(stack, application_id, "enroll").status_code == 200
    for application_id, reason in ((left, "consent withdrawn"), (late, "moved away"), (before, "declined")):
        assert post(stack, application_id, "withdraw", {"reason": reason}).status_code == 200
    assert count_application(stack.db, left) is False  # counted with each step: the repair finds nothing
    body = report(stack, stack.admin)
    assert body["counts"] == {
        "submitted": 0, "eligible": 0, "ineligible": 0, "needs_review": 0, "enrolled": 3, "withdrawn": 1,
    }  # fmt: skip
    assert body["withdrawn_after_enrolment"] == 2
    assert body["applied_count"] == 4
    assert [(s["applied_count"], s["enrolled_count"]) for s in body["sites"]] == [(4, 3)]
    assert sum(w["enrolled"] for w in body["weekly"]) == 3
    assert body["forecast"]["enrolled_per_week"] > 0


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
