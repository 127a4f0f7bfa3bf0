"""Each bundled trial's encoded criteria (services/trials/seed_data/*.criteria.yaml), criterion by criterion:
one table of cases per trial in tests/support/criteria_tables, run here by the same tests for every trial.
A few checks of one trial's own file or registry record close the module."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest

from services.schemas.vocabulary import COUNT_UNITS
from services.trials.registry import trial_from_record
from tests.support.criteria_cases import (
    SUBMITTED,
    Case,
    Trial,
    baseline_outcomes,
    case_id,
    compiled,
    document,
    evaluate,
    expected_decision,
    expected_outcomes,
    has_review,
    outcomes_to_cover,
    result_of,
    rule_variables,
)
from tests.support.criteria_tables import TRIALS, admscc, nct03239535, nl003
from tests.support.registry import registry_record

PER_TRIAL = pytest.mark.parametrize("trial", TRIALS, ids=[trial.trial_id for trial in TRIALS])


def cases(wanted: Callable[[Case], bool] = lambda case: True) -> list[Any]:
    return [
        pytest.param(trial, case, id=case_id(trial, case))
        for trial in TRIALS
        for case in trial.cases
        if wanted(case)
    ]


def per_criterion() -> list[Any]:
    return [
        pytest.param(trial, c.id, id=f"{trial.trial_id} {c.id}")
        for trial in TRIALS
        for c in compiled(trial).criteria
    ]


def per_variable() -> list[Any]:
    return [
        pytest.param(trial, name, id=f"{trial.trial_id} {name}")
        for trial in TRIALS
        for name in sorted(compiled(trial).variables - {"age"})
    ]


# ---- the files ----


@PER_TRIAL
def test_the_criteria_file_lists_the_protocols_criteria_in_order(trial: Trial) -> None:
    assert [c.id for c in compiled(trial).criteria] == list(trial.criteria)
    assert compiled(trial).trial_id == trial.trial_id


@PER_TRIAL
def test_only_the_judgment_criteria_are_left_without_a_rule(trial: Trial) -> None:
    assert [c["id"] for c in document(trial)["criteria"] if c.get("judgment")] == list(trial.judgments)
    assert [c.id for c in compiled(trial).criteria if c.rule is None] == list(trial.judgments)


@PER_TRIAL
def test_the_registry_record_maps_onto_the_trial_and_its_sites(trial: Trial) -> None:
    assert trial.registry, f"{trial.trial_id} states nothing its registry record must give"
    fields = trial_from_record(registry_record(trial.registry_file))
    sites = [(s.name, s.city, s.country, s.status) for s in fields.sites]
    mapped = {name: sites if name == "sites" else getattr(fields, name) for name in trial.registry}
    assert mapped == trial.registry


# ---- the baseline ----


@PER_TRIAL
def test_the_baseline_applicant_gets_the_best_decision_the_trial_allows(trial: Trial) -> None:
    evaluation = evaluate(trial)
    assert (evaluation.decision, evaluation.deciding) == trial.best_decision


@pytest.mark.parametrize(("trial", "cid"), per_criterion())
def test_the_baseline_applicant_has_the_passing_outcome_on_each_criterion(trial: Trial, cid: str) -> None:
    result = result_of(evaluate(trial), cid)
    assert (result.outcome, result.missing) == (baseline_outcomes(trial)[cid], ())
    fragments = trial.baseline_reviews.get(cid, ())
    assert (result.note is None) == (not fragments)
    assert [fragment for fragment in fragments if fragment not in (result.note or "")] == []


@PER_TRIAL
def test_the_baseline_sets_every_variable_the_criteria_read(trial: Trial) -> None:
    # age is derived from birth_date, which the baseline sets wherever a criterion reads age
    assert (compiled(trial).variables - {"age"}) <= set(trial.baseline)
    assert ("age" in compiled(trial).variables) == trial.reads_age
    assert not trial.reads_age or "birth_date" in trial.baseline


@PER_TRIAL
def test_judgment_criteria_do_not_block_the_decision_and_are_not_deciding(trial: Trial) -> None:
    evaluation = evaluate(trial)
    assert [r.id for r in evaluation.results if r.outcome == "judgment"] == list(trial.judgments)
    assert set(evaluation.deciding).isdisjoint(trial.judgments)
    assert evaluation.decision == trial.best_decision[0]


# ---- the tables ----


@pytest.mark.parametrize(("trial", "case"), cases())
def test_a_case_gives_its_criterion_the_expected_outcome(trial: Trial, case: Case) -> None:
    result = result_of(evaluate(trial, case.changes), case.criterion)
    assert (result.outcome, result.missing) == (case.outcome, case.missing)
    assert (result.note is None) == (not case.note), result.note
    assert [fragment for fragment in case.note if fragment not in (result.note or "")] == []


@pytest.mark.parametrize(("trial", "case"), cases(lambda case: case.others is not None))
def test_a_whole_evaluation_case_gives_every_criterion_and_the_decision_their_expected_outcome(
    trial: Trial, case: Case
) -> None:
    evaluation = evaluate(trial, case.changes)
    expected = expected_outcomes(trial, case)
    assert {r.id: r.outcome for r in evaluation.results} == expected
    assert {r.id: r.missing for r in evaluation.results if r.missing and r.id != case.criterion} == {}
    assert (evaluation.decision, evaluation.deciding) == expected_decision(trial, expected)


@pytest.mark.parametrize(("trial", "case"), cases(lambda case: case.decision is not None))
def test_a_case_that_states_a_decision_gets_it(trial: Trial, case: Case) -> None:
    evaluation = evaluate(trial, case.changes)
    assert evaluation.decision == case.decision
    if case.deciding is not None:
        assert evaluation.deciding == case.deciding


@PER_TRIAL
def test_the_case_ids_are_unique(trial: Trial) -> None:
    ids = [case.id for case in trial.cases]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []


@PER_TRIAL
def test_the_table_gives_every_criterion_each_outcome_it_can_take(trial: Trial) -> None:
    """A case states its criterion's outcome and those of `others`; the baseline test states the rest."""
    stated = {(case.criterion, case.outcome) for case in trial.cases}
    stated |= {(cid, outcome) for case in trial.cases for cid, outcome in (case.others or {}).items()}
    stated |= set(baseline_outcomes(trial).items())
    uncovered = {
        c["id"]: sorted(outcomes_to_cover(trial, c) - {outcome for cid, outcome in stated if cid == c["id"]})
        for c in document(trial)["criteria"]
    }
    assert {cid: outcomes for cid, outcomes in uncovered.items() if outcomes} == {}


@PER_TRIAL
def test_the_removal_cases_cover_every_variable_of_every_criterion(trial: Trial) -> None:
    covered = {(case.criterion, case.removed) for case in trial.cases if case.removed}
    read = {(c["id"], name) for c in document(trial)["criteria"] for name in rule_variables(c.get("rule"))}
    assert covered == read


@PER_TRIAL
def test_the_review_cases_cover_every_criterion_with_a_review_rule(trial: Trial) -> None:
    with_review = {c["id"] for c in document(trial)["criteria"] if has_review(c.get("rule"))}
    assert with_review == {case.criterion for case in trial.cases if case.note} | set(trial.baseline_reviews)


# ---- absent observations ----


@pytest.mark.parametrize(("trial", "name"), per_variable())
def test_an_absent_variable_never_makes_the_baseline_ineligible(trial: Trial, name: str) -> None:
    evaluation = evaluate(trial, {name: None})
    assert evaluation.decision in {"eligible", "needs_review"}
    unknown = tuple(r.id for r in evaluation.results if r.outcome == "unknown")
    assert evaluation.deciding == unknown
    assert all(name in r.missing for r in evaluation.results if r.outcome == "unknown")


@PER_TRIAL
def test_an_applicant_with_nothing_recorded_needs_review_listing_what_is_missing(trial: Trial) -> None:
    evaluation = compiled(trial).evaluate({}, SUBMITTED)
    assert evaluation.decision == "needs_review"
    assert evaluation.deciding == tuple(cid for cid in trial.criteria if cid not in trial.judgments)
    missing = {cid: result_of(evaluation, cid).missing for cid in trial.nothing_recorded_missing}
    assert missing == trial.nothing_recorded_missing
    assert [r.id for r in evaluation.results if r.note is not None] == []


# ---- NCT03239535's own checks ----


def test_each_nct03239535_criterion_text_is_the_registrys_own_numbered_item() -> None:
    record = registry_record(nct03239535.TRIAL.registry_file)
    inclusion, exclusion = record["protocolSection"]["eligibilityModule"]["eligibilityCriteria"].split(
        "Exclusion Criteria:"
    )
    for criterion in document(nct03239535.TRIAL)["criteria"]:
        section = inclusion if criterion["kind"] == "inclusion" else exclusion
        assert f"\n{criterion['id'][1:]}. {criterion['text']}\n" in section + "\n"


def test_the_nct03239535_record_is_non_randomized_with_a_placebo_arm_and_no_last_known_status() -> None:
    protocol = registry_record(nct03239535.TRIAL.registry_file)["protocolSection"]
    design = protocol["designModule"]["designInfo"]
    assert (design["allocation"], design["interventionModel"]) == ("NON_RANDOMIZED", "PARALLEL")
    assert design["maskingInfo"] == {"masking": "SINGLE"}
    arms = {arm["label"]: arm["type"] for arm in protocol["armsInterventionsModule"]["armGroups"]}
    assert arms == {"Mesenchymal stem cells": "EXPERIMENTAL", "Normal saline": "PLACEBO_COMPARATOR"}
    assert "lastKnownStatus" not in protocol["statusModule"]


def test_the_nct03239535_e10_thresholds_are_the_protocols_counts_per_microlitre_in_canonical_units() -> None:
    factor, offset = COUNT_UNITS["/uL"]
    assert (50_000 * factor + offset, 4_000 * factor + offset) == pytest.approx((50.0, 4.0))


# ---- NL003-CLI-III-2's own checks ----


def test_every_restored_nl003_threshold_carries_a_comment_saying_so() -> None:
    trial = nl003.TRIAL
    text = (
        resources.files("services.trials.seed_data").joinpath(trial.criteria_file).read_text(encoding="utf-8")
    )
    blocks = dict(re.findall(r"\n  - id: (\S+)\n(.*?)(?=\n  - id: |\Z)", text, flags=re.S))
    counts = {cid: blocks[cid].count("# restored") for cid in ("I2", "I4", "E4", "E8", "E14")}
    assert counts == {"I2": 3, "I4": 1, "E4": 1, "E8": 1, "E14": 4}
    texts = {c.id: c.text for c in compiled(trial).criteria}
    assert "[≤] 70 mmHg" in texts["I2"]
    assert "[≥] 70%" in texts["E4"]


def test_the_nl003_record_keeps_the_nct_number_as_a_secondary_id() -> None:
    ident = registry_record(nl003.TRIAL.registry_file)["protocolSection"]["identificationModule"]
    assert "nctId" not in ident
    nct = {"id": "NCT04274049", "type": "REGISTRY", "domain": "ClinicalTrials.gov"}
    assert ident["secondaryIdInfos"] == [nct]


def test_the_nl003_record_carries_all_6_inclusion_and_19_exclusion_criteria() -> None:
    text = registry_record(nl003.TRIAL.registry_file)["protocolSection"]["eligibilityModule"][
        "eligibilityCriteria"
    ]
    inclusion, exclusion = text.removeprefix("Inclusion Criteria:\n\n").split("\n\nExclusion Criteria:\n\n")
    assert [line.split(".")[0] for line in inclusion.splitlines()] == [str(n) for n in range(1, 7)]
    assert [line.split(".")[0] for line in exclusion.splitlines()] == [str(n) for n in range(1, 20)]


# ---- ADMSCC-CLI-P1-2A's own checks: only the abstract is public ----


def test_the_admscc_criteria_read_nothing_but_cli_diagnosed() -> None:
    assert compiled(admscc.TRIAL).variables == {"cli_diagnosed"}


@pytest.mark.parametrize("cid", ["I3", "E1"])
def test_the_unpublished_admscc_criteria_are_judgment_and_say_they_are_not_public(cid: str) -> None:
    (criterion,) = [c for c in document(admscc.TRIAL)["criteria"] if c["id"] == cid]
    assert criterion["judgment"] is True
    assert "not published in the public record" in criterion["text"]


@pytest.mark.parametrize("cli", [True, False, None])
@pytest.mark.parametrize("birth_date", ["1930-01-01", "1960-05-02", "2010-01-01", None])
def test_no_admscc_applicant_is_ever_reported_eligible(cli: bool | None, birth_date: str | None) -> None:
    assert evaluate(admscc.TRIAL, {"cli_diagnosed": cli, "birth_date": birth_date}).decision != "eligible"


def test_without_a_birth_date_the_admscc_applicant_still_needs_review_on_i2_alone() -> None:
    evaluation = evaluate(admscc.TRIAL, {"birth_date": None})
    assert (evaluation.decision, evaluation.deciding) == ("needs_review", ("I2",))


def test_the_admscc_record_cites_the_publication_and_invents_no_dates() -> None:
    protocol = registry_record(admscc.TRIAL.registry_file)["protocolSection"]
    assert "nctId" not in protocol["identificationModule"]
    assert protocol["sponsorCollaboratorsModule"]["leadSponsor"]["class"] == "OTHER"
    assert protocol["statusModule"] == {"overallStatus": "COMPLETED"}
    (reference,) = protocol["referencesModule"]["references"]
    assert "doi:10.15283/ijsc25002" in reference["citation"]
