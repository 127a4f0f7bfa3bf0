"""Decisions a person can act on (issue 14, part 1), over HTTP on SQLite and PostgreSQL: the reasons,
each criterion's reading, and an ineligible applicant's remedies (eligible_from, renew)."""

from __future__ import annotations

from typing import Any

from tests.support.applicants import eligible_applicant
from tests.support.applications import patch
from tests.support.http import auth
from tests.support.screening import decide, screen
from tests.support.stack import TRIAL, Stack


def read(stack: Stack, application_id: str) -> dict[str, Any]:
    answer = stack.client.get(f"/api/v1/applications/{application_id}", headers=auth(stack.coordinator))
    assert answer.status_code == 200
    body: dict[str, Any] = answer.get_json()
    return body


def test_an_ineligible_decision_names_the_excluding_criterion_with_its_text_and_reading(stack: Stack) -> None:
    body = read(stack, decide(stack, screening_id="HIV", hiv_positive=True))
    assert body["decision"] == "ineligible"
    [reason] = body["reasons"]
    assert (reason["kind"], reason["effect"], reason["missing"]) == ("exclusion", "excludes", [])
    excluded = next(c for c in body["criteria"] if c["id"] == reason["criterion_id"])
    assert excluded["outcome"] == "met" and reason["text"] == excluded["text"]
    assert all("reading" in c for c in body["criteria"])
    assert any(c["reading"] for c in body["criteria"])  # the seed criteria record their readings
    assert (body["eligible_from"], body["renew"]) == (None, [])


def test_a_needs_review_decision_lists_the_unknown_criteria_with_what_is_missing(stack: Stack) -> None:
    applicant = eligible_applicant("UNKNOWN")
    del applicant["hiv_positive"]
    answer = stack.submit(applicant)
    screen(stack, answer.get_json()["id"])
    body = read(stack, answer.get_json()["id"])
    assert body["decision"] == "needs_review"
    effects = [(r["effect"], r["missing"]) for r in body["reasons"]]
    assert effects == [("unknown", ["hiv_positive"]), ("judgment", [])]  # E18: the investigator's call


def test_an_eligible_decision_names_only_what_is_left_to_the_investigators_judgment(stack: Stack) -> None:
    body = read(stack, decide(stack, screening_id="OK"))
    assert (body["decision"], body["eligible_from"]) == ("eligible", None)
    assert [(r["criterion_id"], r["effect"]) for r in body["reasons"]] == [("E18", "judgment")]


def test_an_episode_too_recent_gives_the_date_from_which_a_new_consent_screens_eligible(stack: Stack) -> None:
    application_id = decide(
        stack, screening_id="RECENT", acute_limb_ischemia=True, acute_limb_ischemia_date="2026-09-25"
    )
    body = read(stack, application_id)
    assert body["decision"] == "ineligible" and body["eligible_from"] is not None
    patched = patch(stack, application_id, {"consent_date": body["eligible_from"]})
    assert patched.status_code == 202, patched.get_json()
    screen(stack, application_id)
    assert read(stack, application_id)["decision"] != "ineligible"


def test_imaging_too_old_at_consent_is_named_for_renewal(stack: Stack) -> None:
    body = read(stack, decide(stack, screening_id="OLD-SCAN", infrainguinal_imaging_date="2026-06-01"))
    assert (body["decision"], body["eligible_from"], body["renew"]) == (
        "ineligible", None, ["infrainguinal_imaging_date"],
    )  # fmt: skip
    assert [r["effect"] for r in body["reasons"]] == ["not_met"]


def test_prescreening_explains_its_decisions_alike(stack: Stack) -> None:
    observations = {k: v for k, v in eligible_applicant(hiv_positive=True).items() if k != "screening_id"}
    answer = stack.client.post(
        "/api/v1/prescreen",
        json={"applicant": observations, "trial_ids": [TRIAL]},
        headers=auth(stack.coordinator),
    )
    assert answer.status_code == 200, answer.get_json()
    [result] = answer.get_json()["results"]
    assert [r["effect"] for r in result["reasons"]] == ["excludes"]
    assert "reading" in result["criteria"][0]
