"""Input that helps (issue 14, part 3), over HTTP: refusals that say how to send a value, "did you mean"
for names outside the vocabulary, and the vocabulary itself at GET /api/v1/vocabulary."""

from __future__ import annotations

from services.schemas.vocabulary import VOCABULARY
from tests.support.applicants import eligible_applicant
from tests.support.database import stored
from tests.support.http import assert_problem, auth
from tests.support.stack import Stack


def test_an_unknown_observation_gets_the_vocabulary_name_it_most_likely_meant(stack: Stack) -> None:
    sent = {**eligible_applicant(), "hemoglobin": 121}
    problem = assert_problem(stack.submit(sent), 422, "applicant.hemoglobin")
    [error] = problem["errors"]
    assert error["detail"].endswith("did you mean hemoglobin_g_l?")
    assert stored(stack) == (0, 0, 0)


def test_a_number_out_of_range_is_refused_naming_the_unit_form(stack: Stack) -> None:
    problem = assert_problem(stack.submit({**eligible_applicant(), "hemoglobin_g_l": 12.1}), 422)
    [error] = problem["errors"]
    assert error["field"] == "applicant.hemoglobin_g_l"
    assert 'in g/dL it would be in range: send {"value": number, "unit": "g/dL"}' in error["detail"]
    assert "12.1" not in problem["detail"] + error["detail"]  # the refused value is not echoed


def test_a_fraction_for_a_percentage_is_refused_and_the_percent_unit_accepted(stack: Stack) -> None:
    fraction = {**eligible_applicant("FRACTION"), "iliac_stenosis_pct": 0.9}
    assert "looks like a fraction" in assert_problem(stack.submit(fraction), 422)["errors"][0]["detail"]
    meant = {**eligible_applicant("SMALL"), "iliac_stenosis_pct": {"value": 0.9, "unit": "%"}}
    accepted = stack.submit(meant)
    assert accepted.status_code == 202, accepted.get_json()


def test_the_vocabulary_is_served_to_any_token_with_units_and_ranges(stack: Stack) -> None:
    assert_problem(stack.client.get("/api/v1/vocabulary"), 401)
    for token in (stack.admin, stack.coordinator):
        answer = stack.client.get("/api/v1/vocabulary", headers=auth(token))
        assert answer.status_code == 200
    variables = {v["name"]: v for v in answer.get_json()["variables"]}
    assert set(variables) == {"screening_id", *(v.name for v in VOCABULARY)}
    hemoglobin = variables["hemoglobin_g_l"]
    assert (hemoglobin["type"], hemoglobin["unit"], hemoglobin["minimum"], hemoglobin["maximum"]) == (
        "float", "g/L", 20, 250,
    )  # fmt: skip
    assert hemoglobin["units_accepted"] == ["g/L", "g/dL", "mmol/L"]
    assert variables["sex"]["values"] == ["female", "male"]
    assert "/api/v1/vocabulary" in stack.client.get("/openapi.json").get_json()["info"]["description"]
