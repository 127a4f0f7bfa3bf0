"""The criteria of ADMSCC-CLI-P1-2A (services/trials/seed_data/ADMSCC-CLI-P1-2A.criteria.yaml), one by one.

Only the abstract is public, so no applicant can be eligible: the best outcome is needs_review on I2.
"""

from __future__ import annotations

import json
from datetime import date
from importlib import resources

import pytest

from services.eligibility import Evaluation
from services.trials.criteria import bundled_document, compile_document
from services.trials.registry import trial_from_record

DOCUMENT = bundled_document("ADMSCC-CLI-P1-2A.criteria.yaml")
COMPILED = compile_document(DOCUMENT)
SUBMITTED = date(2026, 11, 1)
IDS = [c["id"] for c in DOCUMENT["criteria"]]
# A 66-year-old man with CLI: as far as the public record goes, the best possible applicant.
BASELINE = {"consent_date": "2026-10-01", "birth_date": "1960-05-02", "sex": "male", "cli_diagnosed": True}
BEST_OUTCOMES = {"I1": "met", "I2": "unknown", "I3": "judgment", "E1": "judgment"}


def evaluate(changes: dict | None = None, remove: tuple[str, ...] = ()) -> Evaluation:
    observations = {**BASELINE, **(changes or {})}
    for name in remove:
        del observations[name]
    return COMPILED.evaluate(observations, SUBMITTED)


def result_of(evaluation: Evaluation, cid: str):
    (result,) = [r for r in evaluation.results if r.id == cid]
    return result


def record() -> dict:
    text = (
        resources.files("services.trials.seed_data")
        .joinpath("ADMSCC-CLI-P1-2A.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


def test_the_criteria_file_has_what_the_abstract_states_and_one_placeholder_per_kind():
    assert [c.id for c in COMPILED.criteria] == ["I1", "I2", "I3", "E1"]
    assert COMPILED.trial_id == "ADMSCC-CLI-P1-2A"
    assert COMPILED.variables == {"cli_diagnosed"}


@pytest.mark.parametrize("cid", ["I3", "E1"])
def test_the_unpublished_criteria_are_judgment_and_say_they_are_not_public(cid):
    (criterion,) = [c for c in DOCUMENT["criteria"] if c["id"] == cid]
    assert criterion["judgment"] is True
    assert "not published in the public record" in criterion["text"]


def test_the_best_applicant_needs_review_on_the_revascularization_criterion_only():
    evaluation = evaluate()
    assert (evaluation.decision, evaluation.deciding) == ("needs_review", ("I2",))
    assert {r.id: r.outcome for r in evaluation.results} == BEST_OUTCOMES


def test_the_revascularization_criterion_asks_the_investigator_with_a_note():
    result = result_of(evaluate(), "I2")
    assert (result.outcome, result.missing) == ("unknown", ())
    assert result.note is not None
    assert "not eligible for standard revascularization" in result.note


def test_an_applicant_without_cli_is_ineligible_on_both_inclusion_rules():
    evaluation = evaluate({"cli_diagnosed": False})
    assert (evaluation.decision, evaluation.deciding) == ("ineligible", ("I1", "I2"))
    assert result_of(evaluation, "I2").note is None


def test_removing_cli_diagnosed_makes_both_inclusion_rules_unknown_listing_it():
    evaluation = evaluate(remove=("cli_diagnosed",))
    assert (evaluation.decision, evaluation.deciding) == ("needs_review", ("I1", "I2"))
    for cid in ("I1", "I2"):
        result = result_of(evaluation, cid)
        assert (result.outcome, result.missing, result.note) == ("unknown", ("cli_diagnosed",), None)


@pytest.mark.parametrize("cli", [True, False, None])
@pytest.mark.parametrize("birth_date", ["1930-01-01", "1960-05-02", "2010-01-01", None])
def test_no_applicant_is_ever_reported_eligible(cli, birth_date):
    changes = {"cli_diagnosed": cli, "birth_date": birth_date}
    observations = {k: v for k, v in {**BASELINE, **changes}.items() if v is not None}
    assert COMPILED.evaluate(observations, SUBMITTED).decision != "eligible"


def test_the_abstract_states_no_age_limit_so_age_decides_nothing():
    assert result_of(evaluate({"birth_date": "2008-10-02"}), "I1").outcome == "met"
    assert evaluate(remove=("birth_date",)).decision == "needs_review"
    assert evaluate(remove=("birth_date",)).deciding == ("I2",)


def test_an_applicant_with_nothing_recorded_needs_review_listing_cli_diagnosed():
    evaluation = COMPILED.evaluate({}, SUBMITTED)
    assert (evaluation.decision, evaluation.deciding) == ("needs_review", ("I1", "I2"))
    assert result_of(evaluation, "I1").missing == ("cli_diagnosed",)


def test_the_registry_record_maps_to_the_trial_by_its_stable_protocol_id():
    fields = trial_from_record(record())
    assert (fields.trial_id, fields.nct_id) == ("ADMSCC-CLI-P1-2A", None)
    assert fields.org_study_id == "ADMSCC-CLI-P1-2A"
    assert fields.sponsor == "Investigators of doi:10.15283/ijsc25002"
    assert (fields.overall_status, fields.phases) == ("COMPLETED", ["PHASE1", "PHASE2"])
    assert (fields.enrollment_target, fields.enrollment_type) == (20, "ACTUAL")
    assert (fields.minimum_age, fields.maximum_age) == (None, None)
    assert [(s.name, s.city, s.country, s.status) for s in fields.sites] == [
        ("Study site, Republic of Korea", None, "South Korea", "COMPLETED")
    ]


def test_the_registry_record_cites_the_publication_and_invents_no_dates():
    protocol = record()["protocolSection"]
    assert "nctId" not in protocol["identificationModule"]
    assert protocol["sponsorCollaboratorsModule"]["leadSponsor"]["class"] == "OTHER"
    assert protocol["statusModule"] == {"overallStatus": "COMPLETED"}
    (reference,) = protocol["referencesModule"]["references"]
    assert "doi:10.15283/ijsc25002" in reference["citation"]
