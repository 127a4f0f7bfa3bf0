"""3+3 dose escalation over HTTP (issue 15, part 2), on SQLite and PostgreSQL: enrolment only into the
open level while its cohort has a place, DLT outcomes, the table's recommendation, and the safety
review's confirmation opening the next level."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

from services.tokens import Role, create_token
from tests.support.applications import post
from tests.support.database import events
from tests.support.http import assert_problem, auth
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack
from tests.support.threads import at_once

DESIGN = {
    "levels": [{"level": 1, "dose": "1e6 cells/kg"}, {"level": 2, "dose": "3e6 cells/kg"}],
    "dlt_window_days": 28,
}
ESCALATION = f"/api/v1/trials/{TRIAL}/dose-escalation"


def state(stack: Stack) -> dict[str, Any]:
    answer = stack.client.get(ESCALATION, headers=auth(stack.coordinator))
    assert answer.status_code == 200, answer.get_json()
    body: dict[str, Any] = answer.get_json()
    return body


def enrol(stack: Stack, screening_id: str) -> Any:
    return post(stack, decide(stack, screening_id=screening_id), "enroll")


def dlt(stack: Stack, application_id: str, happened: bool, evaluable: bool = True) -> Any:
    body = {"dlt": happened, "evaluable": evaluable, "observed_on": datetime.now(UTC).date().isoformat()}
    return post(stack, application_id, "dlt", body)


def test_a_cohort_of_three_without_dlt_escalates_once_the_review_confirms(stack: Stack) -> None:
    admin = auth(stack.admin)
    assert stack.client.put(ESCALATION, json=DESIGN, headers=admin).status_code == 200
    assert state(stack)["open_level"] == 1 and state(stack)["recommendation"]["action"] == "wait"
    cohort = []
    for n in range(3):
        enrolled = enrol(stack, f"L1-{n}")
        assert enrolled.status_code == 200, enrolled.get_json()
        cohort.append(enrolled.get_json()["id"])
    full = assert_problem(enrol(stack, "L1-3"), 409)
    assert "cohort of 3 is full" in full["detail"]
    for application_id in cohort:
        assert dlt(stack, application_id, False).status_code == 200
    assert state(stack)["recommendation"]["action"] == "wait"  # the DLT windows are still open
    with time_machine.travel(datetime.now(UTC) + timedelta(days=29)):
        levels = state(stack)["levels"]
        assert (levels[0]["enrolled"], levels[0]["evaluable"], levels[0]["dlts"]) == (3, 3, 0)
        assert state(stack)["recommendation"] == {
            "action": "escalate", "level": 2, "reason": "0 DLT(s) in 3 at level 1: escalate to 2"
        }  # fmt: skip
        refused = stack.client.post(
            f"{ESCALATION}/decisions", json={"action": "stop", "reason": "no"}, headers=admin
        )
        assert "recommends escalate" in assert_problem(refused, 409)["detail"]
        decision = {"action": "escalate", "reason": "safety review 1: no DLT in 3"}
        confirmed = stack.client.post(f"{ESCALATION}/decisions", json=decision, headers=admin)
        assert confirmed.status_code == 200, confirmed.get_json()
        assert confirmed.get_json()["open_level"] == 2
        assert [level["state"] for level in confirmed.get_json()["levels"]] == ["closed", "open"]
        assert events(stack, "dose_escalation.decided")[-1]["action"] == "escalate"
        assert enrol(stack, "L2-0").status_code == 200


def test_the_design_cannot_change_once_dosed_and_only_the_right_people_act(stack: Stack) -> None:
    admin = auth(stack.admin)
    assert_problem(stack.client.put(ESCALATION, json=DESIGN, headers=auth(stack.coordinator)), 403)
    assert_problem(stack.client.put(ESCALATION, json={**DESIGN, "levels": []}, headers=admin), 422, "levels")
    backwards = {**DESIGN, "levels": list(reversed(DESIGN["levels"]))}
    assert_problem(stack.client.put(ESCALATION, json=backwards, headers=admin), 422)
    assert stack.client.put(ESCALATION, json=DESIGN, headers=admin).status_code == 200
    never_dosed = decide(stack, screening_id="NOT-ENROLLED")
    assert_problem(dlt(stack, never_dosed, True), 409)
    assert enrol(stack, "DOSED").status_code == 200
    assert_problem(stack.client.put(ESCALATION, json=DESIGN, headers=admin), 409)
    with stack.db.transaction() as session:
        sponsor = create_token(session, Role.SPONSOR, sponsor="Someone")
    decision = {"action": "escalate", "reason": "x"}
    assert_problem(stack.client.post(f"{ESCALATION}/decisions", json=decision, headers=auth(sponsor)), 403)


def test_two_dlts_stop_enrolment_at_once_and_an_unevaluable_participant_is_replaced(stack: Stack) -> None:
    assert stack.client.put(ESCALATION, json=DESIGN, headers=auth(stack.admin)).status_code == 200
    first, second = enrol(stack, "A").get_json()["id"], enrol(stack, "B").get_json()["id"]
    assert dlt(stack, first, False, evaluable=False).status_code == 200  # replaced: a place reopens
    third, fourth = enrol(stack, "C").get_json()["id"], enrol(stack, "D").get_json()["id"]
    assert_problem(enrol(stack, "E"), 409)  # B, C, D: the cohort of 3 is full
    assert dlt(stack, second, True).status_code == 200
    assert dlt(stack, third, True).status_code == 200
    assert state(stack)["recommendation"]["action"] == "stop"  # 2 DLTs at the lowest level, not waiting
    assert "2 DLTs" in assert_problem(enrol(stack, "F"), 409)["detail"]
    assert fourth


def test_the_adipose_msc_trial_ships_with_its_3_plus_3_design(stack: Stack) -> None:
    answer = stack.client.get("/api/v1/trials/ADMSCC-CLI-P1-2A/dose-escalation", headers=auth(stack.admin))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["cohort_size"], body["max_per_level"], len(body["levels"])) == (3, 6, 3)
    assert all("NOT STATED" in level["dose"] for level in body["levels"])


def test_simultaneous_enrolments_never_overfill_a_cohort(stack: Stack) -> None:
    """Six eligible applicants enrolled at once into a cohort of 3: the design's row lock lets three in."""
    assert stack.client.put(ESCALATION, json=DESIGN, headers=auth(stack.admin)).status_code == 200
    waiting = [decide(stack, screening_id=f"RACE-{n}") for n in range(6)]
    answers: list[int] = []
    lock = threading.Lock()

    def enrol_next() -> None:
        with lock:
            application_id = waiting.pop()
        client = stack.app.test_client()
        response = client.post(
            f"/api/v1/applications/{application_id}/enroll", headers=auth(stack.coordinator)
        )
        answers.append(response.status_code)

    assert at_once(enrol_next, 6) == []
    assert sorted(answers) == [200, 200, 200, 409, 409, 409]
    assert state(stack)["levels"][0]["enrolled"] == 3
