"""Protocol amendments and corrected observations, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select, update

from models import Application, Event, Screening
from services.applications.rescreening import rescreen_trial
from services.applications.screening import screen_application
from services.tokens import Role, create_token
from services.trials.criteria import bundled_document
from tests.support.applicants import eligible_applicant
from tests.support.applications import patch
from tests.support.criteria import amended
from tests.support.database import stored
from tests.support.http import assert_problem
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack


def put_criteria(stack: Stack, document: dict[str, Any], token: str | None = None) -> Any:
    return stack.client.put(
        f"/api/v1/trials/{TRIAL}/criteria",
        json=document,
        headers={"Authorization": f"Bearer {token or stack.admin}"},
    )


def latest_event_id(stack: Stack, event_type: str) -> str:
    with stack.db.sessions() as session:
        event_id = session.scalars(
            select(Event.id).where(Event.type == event_type).order_by(Event.seq.desc())
        ).first()
    assert event_id is not None
    return event_id


def status_of(stack: Stack, application_id: str) -> tuple[str, str | None, int | None]:
    with stack.db.sessions() as session:
        application = session.get_one(Application, application_id)
        return application.status, application.decision, application.criteria_version


def test_an_amendment_rescreens_open_applications_and_nothing_else(stack: Stack) -> None:
    becomes_ineligible = decide(stack, screening_id="A", wagner_grade=4)
    stays_eligible = decide(stack, screening_id="B", wagner_grade=1)
    applicant = eligible_applicant("C")
    del applicant["hiv_positive"]
    review = stack.submit(applicant).get_json()["id"]
    with stack.db.sessions() as session:
        review_event = str(session.scalar(select(Event.id).where(Event.application_id == review)))
    screen_application(stack.db, review, review_event, 5)

    already_ineligible = decide(stack, screening_id="D", prior_cell_therapy=True)
    withdrawn = decide(stack, screening_id="E", wagner_grade=4)
    with stack.db.transaction() as session:
        session.execute(update(Application).where(Application.id == withdrawn).values(status="withdrawn"))

    response = put_criteria(stack, amended())
    assert response.status_code == 201 and response.get_json()["version"] == 2
    tally = rescreen_trial(stack.db, TRIAL, 2, latest_event_id(stack, "trial.criteria_changed"), batch_size=2)

    assert (tally.screened, tally.changed, tally.finished) == (3, 1, True)
    assert status_of(stack, becomes_ineligible) == ("ineligible", "ineligible", 2)
    assert status_of(stack, stays_eligible) == ("eligible", "eligible", 2)
    assert status_of(stack, review) == ("needs_review", "needs_review", 2)
    assert status_of(stack, already_ineligible) == ("ineligible", "ineligible", 1)
    assert status_of(stack, withdrawn)[0] == "withdrawn" and status_of(stack, withdrawn)[2] == 1
    with stack.db.sessions() as session:
        rounds = session.execute(
            select(Screening.round, Screening.criteria_version, Screening.decision)
            .where(Screening.application_id == becomes_ineligible)
            .order_by(Screening.round)
        ).all()
        screened_after = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.type == "application.screened", Event.application_id == becomes_ineligible)
        )
    assert [tuple(r) for r in rounds] == [(1, 1, "eligible"), (2, 2, "ineligible")]
    assert screened_after == 2
    body = stack.client.get(
        f"/api/v1/applications/{becomes_ineligible}", headers={"Authorization": f"Bearer {stack.admin}"}
    ).get_json()
    assert [h["status"] for h in body["history"]] == ["submitted", "eligible", "ineligible"]
    assert "version 2" in body["history"][-1]["reason"]
    assert next(c for c in body["criteria"] if c["id"] == "I4")["outcome"] == "not_met"


def test_a_redelivered_amendment_changes_nothing(stack: Stack) -> None:
    decide(stack, screening_id="A", wagner_grade=4)
    put_criteria(stack, amended())
    event_id = latest_event_id(stack, "trial.criteria_changed")
    assert rescreen_trial(stack.db, TRIAL, 2, event_id).screened == 1
    again = rescreen_trial(stack.db, TRIAL, 2, event_id)
    assert (again.screened, again.finished) == (0, True)
    with stack.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Screening)) == 2


def test_an_unfinished_rescreen_resumes_where_it_stopped(stack: Stack) -> None:
    for n in range(5):
        decide(stack, screening_id=f"S{n}", wagner_grade=4)
    put_criteria(stack, amended())
    event_id = latest_event_id(stack, "trial.criteria_changed")
    first = rescreen_trial(stack.db, TRIAL, 2, event_id, batch_size=2, deadline=0.0)
    assert (first.screened, first.finished) == (0, False)
    done = rescreen_trial(stack.db, TRIAL, 2, event_id, batch_size=2)
    assert (done.screened, done.changed, done.finished) == (5, 5, True)


def test_sending_the_current_criteria_again_creates_no_version(stack: Stack) -> None:
    response = put_criteria(stack, bundled_document("NCT06359912.criteria.yaml"))
    assert response.status_code == 200 and response.get_json()["version"] == 1
    with stack.db.sessions() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Event).where(Event.type == "trial.criteria_changed")
            )
            == 0
        )


def test_bad_criteria_are_refused_and_nothing_changes(stack: Stack) -> None:
    document = amended()
    document["criteria"][0]["rule"] = {"var": "no_such_variable", "eq": True}
    body = assert_problem(put_criteria(stack, document), 422)
    assert "I1" in body["detail"] and "no_such_variable" in body["detail"]
    mismatch = amended()
    mismatch["trial_id"] = "NCT00000001"
    assert_problem(put_criteria(stack, mismatch), 422, "trial_id")
    assert_problem(put_criteria(stack, amended(), token=stack.coordinator), 403)
    criteria = stack.client.get(
        f"/api/v1/trials/{TRIAL}/criteria", headers={"Authorization": f"Bearer {stack.admin}"}
    )
    assert criteria.get_json()["version"] == 1


def test_corrected_observations_are_screened_again(stack: Stack) -> None:
    application_id = decide(stack, wagner_grade=5)
    assert status_of(stack, application_id)[1] == "ineligible"
    etag = stack.client.get(
        f"/api/v1/applications/{application_id}", headers={"Authorization": f"Bearer {stack.coordinator}"}
    ).headers["ETag"]
    response = patch(stack, application_id, {"wagner_grade": 2}, **{"If-Match": etag})
    assert response.status_code == 202
    body = response.get_json()
    assert (
        body["status"] == "submitted"
        and body["decision"] is None
        and body["observations"]["wagner_grade"] == 2
    )
    assert response.headers["ETag"] != etag
    event_id = latest_event_id(stack, "application.updated")
    assert screen_application(stack.db, application_id, event_id, 5).decision == "eligible"
    with stack.db.sessions() as session:
        rounds = session.scalars(
            select(Screening.decision)
            .where(Screening.application_id == application_id)
            .order_by(Screening.round)
        ).all()
    assert list(rounds) == ["ineligible", "eligible"]


def test_a_stale_if_match_is_412_and_changes_nothing(stack: Stack) -> None:
    application_id = decide(stack)
    assert_problem(patch(stack, application_id, {"abi": 0.4}, **{"If-Match": '"stale"'}), 412)
    assert status_of(stack, application_id)[0] == "eligible"


def test_corrections_are_validated_like_submissions(stack: Stack) -> None:
    application_id = decide(stack)
    assert_problem(patch(stack, application_id, {"abi": "low"}), 422, "applicant.abi")
    assert_problem(patch(stack, application_id, {"sex": None}), 422, "applicant.sex")
    assert_problem(patch(stack, application_id, {"screening_id": "X"}), 422, "applicant.screening_id")
    assert status_of(stack, application_id)[0] == "eligible"


def test_removing_an_observation_makes_it_unknown(stack: Stack) -> None:
    application_id = decide(stack)
    assert patch(stack, application_id, {"hiv_positive": None}).status_code == 202
    screen_application(stack.db, application_id, latest_event_id(stack, "application.updated"), 5)
    assert status_of(stack, application_id)[1] == "needs_review"


def test_unchanged_observations_do_not_rescreen(stack: Stack) -> None:
    application_id = decide(stack)
    response = patch(stack, application_id, {"abi": 0.5})
    assert response.status_code == 200 and response.get_json()["status"] == "eligible"
    assert stored(stack)[2] == 2  # submitted + screened, no update event


def test_withdrawn_applications_cannot_be_corrected_and_other_sites_cannot_see_them(stack: Stack) -> None:
    application_id = decide(stack)
    with stack.db.transaction() as session:
        session.execute(update(Application).values(status="withdrawn"))
        from models import Site

        session.add(Site(site_id="site_other", trial_id=TRIAL, name="Other hospital", status="RECRUITING"))
        other = create_token(session, Role.COORDINATOR, ["site_other"])
    assert_problem(patch(stack, application_id, {"abi": 0.4}), 409)
    assert_problem(patch(stack, application_id, {"abi": 0.4}, token=other), 404)


def test_the_sweep_republishes_an_amendment_whose_message_was_lost(stack: Stack) -> None:
    from datetime import timedelta

    from models.base import utcnow
    from services.applications.rescreening import republish_unfinished_amendments

    decide(stack, screening_id="A", wagner_grade=4)
    put_criteria(stack, amended())
    an_hour_ago = utcnow() - timedelta(hours=1)
    with stack.db.transaction() as session:
        session.execute(update(Event).values(status="published", published_at=an_hour_ago))
    with stack.db.transaction() as session:
        assert republish_unfinished_amendments(session, utcnow() - timedelta(minutes=5)) == [TRIAL]
    event_id = latest_event_id(stack, "trial.criteria_changed")
    with stack.db.sessions() as session:
        assert session.scalars(select(Event.status).where(Event.id == event_id)).one() == "pending"
    rescreen_trial(stack.db, TRIAL, 2, event_id)
    with stack.db.transaction() as session:
        session.execute(update(Event).values(status="published", published_at=an_hour_ago))
    with stack.db.transaction() as session:
        assert republish_unfinished_amendments(session, utcnow() - timedelta(minutes=5)) == []


def test_an_older_amendments_message_arriving_late_changes_nothing(stack: Stack) -> None:
    application_id = decide(stack, screening_id="A", wagner_grade=1)
    put_criteria(stack, amended(wagner_max=0))
    v2 = latest_event_id(stack, "trial.criteria_changed")
    put_criteria(stack, amended(wagner_max=3))
    v3 = latest_event_id(stack, "trial.criteria_changed")
    late = rescreen_trial(stack.db, TRIAL, 2, v2)
    assert (late.screened, late.finished) == (0, True)
    assert rescreen_trial(stack.db, TRIAL, 3, v3).screened == 1
    assert status_of(stack, application_id) == ("eligible", "eligible", 3)


def test_an_amendment_keeps_an_investigators_review_when_the_automated_outcome_is_unchanged(
    stack: Stack,
) -> None:
    application_id = decide(stack, screening_id="A", hiv_positive=None)
    stack.client.post(
        f"/api/v1/applications/{application_id}/review",
        json={"decision": "eligible", "reason": "negative test on file"},
        headers={"Authorization": f"Bearer {stack.coordinator}"},
    )
    put_criteria(stack, amended(wagner_max=3))
    tally = rescreen_trial(stack.db, TRIAL, 2, latest_event_id(stack, "trial.criteria_changed"))
    assert (tally.screened, tally.changed) == (1, 0)
    assert status_of(stack, application_id) == ("eligible", "eligible", 2)


def test_windows_longer_than_a_century_and_non_finite_numbers_are_refused(stack: Stack) -> None:
    for rule in ({"var": "stroke_date", "within": {"years": 3000}}, {"var": "abi", "le": float("nan")}):
        document = amended()
        document["criteria"][0]["rule"] = rule
        response = stack.client.put(
            f"/api/v1/trials/{TRIAL}/criteria",
            data=json.dumps(document),
            headers={"Authorization": f"Bearer {stack.admin}", "Content-Type": "application/json"},
        )
        assert response.status_code in (400, 422), response.get_data(as_text=True)
