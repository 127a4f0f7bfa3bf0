"""The coordinator's worklist (issue 14, part 2), on SQLite and PostgreSQL: needs_review applications
with the observations that would settle them, valued by trying their answers through the criteria."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Site
from services.tokens import Role, create_token
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem, auth
from tests.support.screening import screen
from tests.support.stack import TRIAL, Stack


def undecided(stack: Stack, screening_id: str, *absent: str) -> str:
    applicant = {k: v for k, v in eligible_applicant(screening_id).items() if k not in absent}
    answer = stack.submit(applicant)
    assert answer.status_code == 202, answer.get_json()
    application_id: str = answer.get_json()["id"]
    screen(stack, application_id)
    return application_id


def work(stack: Stack, token: str | None = None, **query: str) -> Any:
    return stack.client.get("/api/v1/worklist", query_string=query, headers=auth(token or stack.coordinator))


def test_the_application_one_observation_would_decide_comes_first_with_what_it_settles(stack: Stack) -> None:
    # Two observations missing from two criteria: neither alone decides.
    two = undecided(stack, "TWO", "hiv_positive", "stroke")
    one = undecided(stack, "ONE", "hiv_positive")
    decided = stack.submit(eligible_applicant("DONE")).get_json()["id"]
    screen(stack, decided)
    answer = work(stack)
    assert answer.status_code == 200, answer.get_json()
    items = answer.get_json()["items"]
    assert [item["application_id"] for item in items] == [one, two]
    first = items[0]
    assert first["screening_id"] == "ONE" and first["trial_id"] == TRIAL
    assert first["missing"] == [
        {"variable": "hiv_positive", "settles_criteria": ["E11"], "settles_decision": True}
    ]
    second = {m["variable"]: m for m in items[1]["missing"]}
    assert set(second) == {"hiv_positive", "stroke"}
    assert not any(m["settles_decision"] for m in second.values())
    assert all(len(m["settles_criteria"]) == 1 for m in second.values())


def test_a_number_is_valued_by_trying_values_across_its_range(stack: Stack) -> None:
    undecided(stack, "NO-ABI", "abi", "rest_pain", "severe_claudication")
    [item] = work(stack).get_json()["items"]
    missing = {m["variable"]: m for m in item["missing"]}
    assert {"abi", "rest_pain", "severe_claudication"} <= set(missing)


def test_the_worklist_is_scoped_to_the_callers_sites_and_refused_to_sponsors(stack: Stack) -> None:
    undecided(stack, "MINE", "hiv_positive")
    with stack.db.transaction() as session:
        other_site = session.scalars(select(Site.site_id).where(Site.site_id != stack.site_id)).first()
        assert other_site is not None
        elsewhere = create_token(session, Role.COORDINATOR, [other_site])
        sponsor = create_token(session, Role.SPONSOR, sponsor="Anyone")
    assert work(stack, elsewhere).get_json()["items"] == []
    assert len(work(stack, stack.admin).get_json()["items"]) == 1
    assert work(stack, stack.admin, trial_id="NCT03239535").get_json()["items"] == []
    assert len(work(stack, stack.admin, trial_id=TRIAL.lower()).get_json()["items"]) == 1
    assert_problem(work(stack, sponsor), 403)
    assert_problem(work(stack, site_id="bad id!"), 422, "site_id")
