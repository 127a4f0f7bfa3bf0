"""The 33 criteria of NCT03239535 (services/trials/seed_data/NCT03239535.criteria.yaml), one by one."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources

import pytest

from services.eligibility import Evaluation
from services.schemas.vocabulary import COUNT_UNITS
from services.trials.criteria import bundled_document, compile_document
from services.trials.registry import trial_from_record

DOCUMENT = bundled_document("NCT03239535.criteria.yaml")
COMPILED = compile_document(DOCUMENT)
RECORD = json.loads(
    resources.files("services.trials.seed_data").joinpath("NCT03239535.json").read_text(encoding="utf-8")
)
SUBMITTED = date(2026, 11, 1)
CONSENT = "2026-10-01"
IDS = [c["id"] for c in DOCUMENT["criteria"]]
JUDGMENT = "E13"
KINDS = {c["id"]: c["kind"] for c in DOCUMENT["criteria"]}

# Conditions the baseline applicant does not have (each bool read by E5, E6, E10-E12, E16, E18, E20, E21).
NEVER = [
    *["bone_marrow_disease", "bleeding_active", "immunosuppressive_therapy"],
    *["neurological_deficit_pronounced", "gait_disturbance_other_cause", "severe_respiratory_disease"],
    *["angiography_contraindicated", "pregnant", "lactating"],
    *["hiv_positive", "hcv_antibody_positive", "hbsag_positive", "hbv_dna_detectable"],
]
# A 62-year-old white woman with type 2 diabetes and treated hypertension, still in rest pain with dry toe
# gangrene after a failed angioplasty, planned for a bypass with poor runoff: eligible, every variable read
# is present. Her old stroke, infarction, cancer and alcohol abuse all lie outside the protocol's reach.
BASELINE = dict.fromkeys(NEVER, False) | {
    "consent_date": CONSENT,
    # I1
    "birth_date": "1964-03-15",
    "race": "white",
    "sex": "female",
    # I2, I3
    "atherosclerosis": True,
    "diabetes": "type2",
    "cli_diagnosed": True,
    "fontaine_stage": 4,
    "rutherford_grade": 5,
    # I4, I5, I6
    "revascularization": "endovascular",
    "revascularization_relieved_symptoms": False,
    "conservative_therapy_ongoing": True,
    "emergency_amputation_indicated": False,
    "amputation_needed": "minor",
    "revascularization_outcome_questionable": True,
    # I7: the ABI qualifies, the ankle pressure alone would not
    "abi": 0.45,
    "ankle_systolic_pressure_mmhg": 75.0,
    # I8, I9
    "diabetes_treated": True,
    "hba1c_pct": 7.2,
    "hypertension": True,
    "hypertension_treated": True,
    "hypertension_uncontrolled": False,
    # I10, E8, E9
    "creatinine_x_uln": 0.9,
    "bilirubin_x_uln": 0.6,
    "alt_x_uln": 0.8,
    "ast_x_uln": 0.7,
    # I11, E22
    "consent_signed": True,
    "follow_up_agreed": True,
    # E1, E2, E3, E7
    "gangrene": "dry_toe",
    "limb_infection": "none",
    "systemic_infection": "none",
    "acute_limb_ischemia": True,
    "acute_limb_ischemia_current": False,
    # E4, E5, E10, E16
    "life_expectancy_months": 24,
    "malignancy": True,
    "malignancy_active": False,
    "platelets_10e9_l": 220.0,
    "wbc_10e9_l": 6.5,
    "lvef_pct": 55.0,
    # E17, E19: long enough ago
    "stroke": True,
    "stroke_date": "2025-02-10",
    "myocardial_infarction": True,
    "myocardial_infarction_date": "2023-05-01",
    "substance_abuse": True,
    "substance_abuse_date": "2025-12-01",
}
BASELINE_OUTCOMES = {cid: ("met" if KINDS[cid] == "inclusion" else "not_met") for cid in IDS} | {
    JUDGMENT: "judgment"
}


def evaluate(changes: dict | None = None, remove: tuple[str, ...] = ()) -> Evaluation:
    observations = {**BASELINE, **(changes or {})}
    for name in remove:
        observations.pop(name, None)
    return COMPILED.evaluate(observations, SUBMITTED)


def split(changes: dict) -> tuple[dict, tuple[str, ...]]:
    """Changes whose value is None remove that variable."""
    removed = tuple(name for name, value in changes.items() if value is None)
    return {name: value for name, value in changes.items() if value is not None}, removed


def result_of(evaluation: Evaluation, cid: str):
    (result,) = [r for r in evaluation.results if r.id == cid]
    return result


def expected_decision(outcomes: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """The contract's rule: ineligible on a failed inclusion or a met exclusion, else review on unknowns."""
    failing = tuple(
        cid for cid in IDS if outcomes[cid] == ("not_met" if KINDS[cid] == "inclusion" else "met")
    )
    if failing:
        return "ineligible", failing
    unknown = tuple(cid for cid in IDS if outcomes[cid] == "unknown")
    return ("needs_review", unknown) if unknown else ("eligible", ())


def rule_variables(node) -> set[str]:
    if isinstance(node, dict):
        names = {node["var"]} if "var" in node else set()
        return names.union(*(rule_variables(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(rule_variables(item) for item in node))
    return set()


def has_review(node) -> bool:
    if isinstance(node, dict):
        return "review" in node or any(has_review(value) for value in node.values())
    if isinstance(node, list):
        return any(has_review(item) for item in node)
    return False


# ---- the file and the registry record ----


def test_the_criteria_file_has_11_inclusions_and_22_exclusions_in_protocol_order():
    expected = [f"I{n}" for n in range(1, 12)] + [f"E{n}" for n in range(1, 23)]
    assert [c.id for c in COMPILED.criteria] == expected
    assert COMPILED.trial_id == "NCT03239535"


def test_only_the_physicians_catch_all_is_left_to_judgment():
    assert [c.id for c in COMPILED.criteria if c.rule is None] == [JUDGMENT]


def test_each_criterion_text_is_the_registrys_own_numbered_item():
    inclusion, exclusion = RECORD["protocolSection"]["eligibilityModule"]["eligibilityCriteria"].split(
        "Exclusion Criteria:"
    )
    for criterion in DOCUMENT["criteria"]:
        section = inclusion if criterion["kind"] == "inclusion" else exclusion
        assert f"\n{criterion['id'][1:]}. {criterion['text']}\n" in section + "\n"


def test_the_registry_record_maps_onto_the_trial_and_its_one_site_in_russia():
    fields = trial_from_record(RECORD)
    assert fields.trial_id == "NCT03239535"
    assert fields.org_study_id == "MSC-CLI/FMBA/001"
    assert fields.sponsor == "Federal Research Clinical Center of Federal Medical & Biological Agency, Russia"
    assert fields.phases == ["PHASE1", "PHASE2"]
    assert fields.overall_status == "UNKNOWN"
    assert (fields.enrollment_target, fields.enrollment_type) == (40, "ESTIMATED")
    assert (fields.minimum_age, fields.maximum_age, fields.sex) == ("18 Years", "80 Years", "ALL")
    assert fields.conditions == ["Critical Limb Ischemia"]
    (site,) = fields.sites
    assert site.name == "Federal Research Clinical Center of Federal Medical & Biological Agency"
    assert (site.city, site.country, site.status) == ("Moscow", "Russian Federation", "UNKNOWN")


def test_the_registry_record_is_non_randomized_with_a_placebo_arm_and_no_invented_last_known_status():
    protocol = RECORD["protocolSection"]
    design = protocol["designModule"]["designInfo"]
    assert (design["allocation"], design["interventionModel"]) == ("NON_RANDOMIZED", "PARALLEL")
    assert design["maskingInfo"] == {"masking": "SINGLE"}
    arms = {arm["label"]: arm["type"] for arm in protocol["armsInterventionsModule"]["armGroups"]}
    assert arms == {"Mesenchymal stem cells": "EXPERIMENTAL", "Normal saline": "PLACEBO_COMPARATOR"}
    assert "lastKnownStatus" not in protocol["statusModule"]


# ---- the baseline ----


def test_the_baseline_applicant_is_eligible():
    evaluation = evaluate()
    assert (evaluation.decision, evaluation.deciding) == ("eligible", ())


@pytest.mark.parametrize("cid", IDS)
def test_the_baseline_applicant_has_the_passing_outcome_on_each_criterion(cid):
    result = result_of(evaluate(), cid)
    assert (result.outcome, result.missing, result.note) == (BASELINE_OUTCOMES[cid], (), None)


def test_the_baseline_sets_every_variable_the_criteria_read():
    assert (COMPILED.variables - {"age"}) <= set(BASELINE)
    assert "age" in COMPILED.variables


def test_the_judgment_criterion_stays_judgment_and_does_not_block_eligibility():
    evaluation = evaluate()
    assert result_of(evaluation, JUDGMENT).outcome == "judgment"
    assert JUDGMENT not in evaluation.deciding
    assert evaluation.decision == "eligible"


# ---- thresholds, windows and the readings, one variant at a time ----


def variant(label: str, changes: dict, outcomes: dict[str, str]):
    return pytest.param(changes, outcomes, id=label)


def lab_variants(name: str, label: str, failure: str) -> list:
    """I10 at and around the upper normal limit, and the failure criterion at and around twice it."""
    return [
        variant(f"I10 {label} 0.99 x ULN is normal", {name: 0.99}, {}),
        variant(f"I10 {label} at the ULN is normal", {name: 1.0}, {}),
        variant(f"I10 {label} 1.01 x ULN goes to review", {name: 1.01}, {"I10": "unknown"}),
        variant(
            f"I10 {label} 1.99 x ULN goes to review, {failure} not met", {name: 1.99}, {"I10": "unknown"}
        ),
        variant(f"{failure} {label} at 2 x ULN is failure", {name: 2.0}, {"I10": "not_met", failure: "met"}),
        variant(f"{failure} {label} 2.01 x ULN is failure", {name: 2.01}, {"I10": "not_met", failure: "met"}),
    ]


VARIANTS = [
    # I1: age at the consent date, inclusive 18..80; Caucasian origin
    variant("I1 18th birthday on the consent day", {"birth_date": "2008-10-01"}, {}),
    variant("I1 17 the day before the 18th birthday", {"birth_date": "2008-10-02"}, {"I1": "not_met"}),
    variant("I1 80 the day before the 81st birthday", {"birth_date": "1945-10-02"}, {}),
    variant("I1 81st birthday on the consent day", {"birth_date": "1945-10-01"}, {"I1": "not_met"}),
    variant("I1 17 at consent though 18 at submission", {"birth_date": "2008-10-15"}, {"I1": "not_met"}),
    variant("I1 age_years 17", {"birth_date": None, "age_years": 17}, {"I1": "not_met"}),
    variant("I1 age_years 18", {"birth_date": None, "age_years": 18}, {}),
    variant("I1 age_years 80", {"birth_date": None, "age_years": 80}, {}),
    variant("I1 age_years 81", {"birth_date": None, "age_years": 81}, {"I1": "not_met"}),
    variant("I1 birth_date wins over age_years", {"age_years": 99}, {}),
    variant("I1 a black applicant", {"race": "black"}, {"I1": "not_met"}),
    variant("I1 an asian applicant", {"race": "asian"}, {"I1": "not_met"}),
    variant("I1 race other", {"race": "other"}, {"I1": "not_met"}),
    variant("I1 race unknown goes to review", {"race": "unknown"}, {"I1": "unknown"}),
    variant(
        "I1 race unknown but too old", {"race": "unknown", "birth_date": "1945-10-01"}, {"I1": "not_met"}
    ),
    variant("I1 a man", {"sex": "male", "pregnant": None, "lactating": None}, {}),
    # I2: atherosclerotic or diabetic background
    variant("I2 diabetic without atherosclerosis", {"atherosclerosis": False}, {}),
    variant("I2 atherosclerotic without diabetes", {"diabetes": "none"}, {}),
    variant("I2 neither background", {"atherosclerosis": False, "diabetes": "none"}, {"I2": "not_met"}),
    variant(
        "I2 type 1 diabetic meets I2 and E15", {"atherosclerosis": False, "diabetes": "type1"}, {"E15": "met"}
    ),
    # I3: CLI, Fontaine 3-4 or Rutherford 4-6
    variant("I3 CLI not diagnosed", {"cli_diagnosed": False}, {"I3": "not_met"}),
    variant("I3 Fontaine 3 at the threshold", {"fontaine_stage": 3, "rutherford_grade": 3}, {}),
    variant("I3 Fontaine 2 below it", {"fontaine_stage": 2, "rutherford_grade": 3}, {"I3": "not_met"}),
    variant("I3 Fontaine 4 above it", {"fontaine_stage": 4, "rutherford_grade": 3}, {}),
    variant("I3 Rutherford 4 at the threshold", {"fontaine_stage": 2, "rutherford_grade": 4}, {}),
    variant("I3 Rutherford 3 below it", {"fontaine_stage": 1, "rutherford_grade": 3}, {"I3": "not_met"}),
    variant("I3 Rutherford 5 above it", {"fontaine_stage": 2, "rutherford_grade": 5}, {}),
    variant("I3 Rutherford 6 at the top", {"fontaine_stage": 2, "rutherford_grade": 6}, {}),
    # I4: failed surgical (open or endovascular) treatment, conservative therapy going on
    variant("I4 after failed open surgery", {"revascularization": "surgical"}, {}),
    variant("I4 never revascularized", {"revascularization": "none"}, {"I4": "not_met"}),
    variant(
        "I4 never revascularized needs no details",
        {"revascularization": "none", "revascularization_relieved_symptoms": None},
        {"I4": "not_met"},
    ),
    variant("I4 symptoms relieved", {"revascularization_relieved_symptoms": True}, {"I4": "not_met"}),
    variant("I4 conservative therapy stopped", {"conservative_therapy_ongoing": False}, {"I4": "not_met"}),
    # I5 and E14: emergency indication to a major amputation
    variant("I5 emergency minor amputation", {"emergency_amputation_indicated": True}, {}),
    variant(
        "I5 emergency with no amputation level",
        {"emergency_amputation_indicated": True, "amputation_needed": "none"},
        {},
    ),
    variant(
        "I5 emergency major amputation",
        {"emergency_amputation_indicated": True, "amputation_needed": "major"},
        {"I5": "not_met", "E14": "met"},
    ),
    variant("E14 major amputation needed, not urgently", {"amputation_needed": "major"}, {"E14": "met"}),
    variant("E14 no amputation needed", {"amputation_needed": "none"}, {}),
    # I6
    variant(
        "I6 no questionable reconstruction planned",
        {"revascularization_outcome_questionable": False},
        {"I6": "not_met"},
    ),
    # I7: ABI <= 0.5 or ankle pressure <= 70 mmHg
    variant("I7 ABI 0.49", {"abi": 0.49}, {}),
    variant("I7 ABI 0.5 at the threshold", {"abi": 0.5}, {}),
    variant("I7 ABI 0.51 with ankle pressure 75", {"abi": 0.51}, {"I7": "not_met"}),
    variant("I7 ankle pressure 69", {"abi": 0.6, "ankle_systolic_pressure_mmhg": 69.0}, {}),
    variant("I7 ankle pressure 70 at the threshold", {"abi": 0.6, "ankle_systolic_pressure_mmhg": 70.0}, {}),
    variant("I7 ankle pressure 71", {"abi": 0.6, "ankle_systolic_pressure_mmhg": 71.0}, {"I7": "not_met"}),
    variant("I7 both just above", {"abi": 0.51, "ankle_systolic_pressure_mmhg": 70.5}, {"I7": "not_met"}),
    # I8: type 2 diabetics treated with HbA1c <= 8.5 %
    variant("I8 HbA1c 8.4", {"hba1c_pct": 8.4}, {}),
    variant("I8 HbA1c 8.5 at the threshold", {"hba1c_pct": 8.5}, {}),
    variant("I8 HbA1c 8.6", {"hba1c_pct": 8.6}, {"I8": "not_met"}),
    variant("I8 untreated type 2 diabetes", {"diabetes_treated": False}, {"I8": "not_met"}),
    variant("I8 no diabetes, high HbA1c", {"diabetes": "none", "hba1c_pct": 10.0}, {}),
    variant(
        "I8 no diabetes needs no HbA1c",
        {"diabetes": "none", "diabetes_treated": False, "hba1c_pct": None},
        {},
    ),
    variant("I8 does not apply to type 1", {"diabetes": "type1", "hba1c_pct": 10.0}, {"E15": "met"}),
    # I9: hypertensives on medication if needed
    variant(
        "I9 no hypertension, no medication",
        {"hypertension": False, "hypertension_treated": False},
        {},
    ),
    variant(
        "I9 no hypertension needs no details",
        {"hypertension": False, "hypertension_treated": None, "hypertension_uncontrolled": None},
        {},
    ),
    variant("I9 untreated, controlled, goes to review", {"hypertension_treated": False}, {"I9": "unknown"}),
    variant(
        "I9 untreated and uncontrolled",
        {"hypertension_treated": False, "hypertension_uncontrolled": True},
        {"I9": "not_met"},
    ),
    variant("I9 treated though uncontrolled", {"hypertension_uncontrolled": True}, {}),
    # I10, E8, E9: multiples of the upper normal limit
    *lab_variants("creatinine_x_uln", "creatinine", "E8"),
    *lab_variants("bilirubin_x_uln", "bilirubin", "E9"),
    *lab_variants("alt_x_uln", "ALT", "E9"),
    *lab_variants("ast_x_uln", "AST", "E9"),
    # I11 and E22
    variant("I11 and E22 consent unsigned", {"consent_signed": False}, {"I11": "not_met", "E22": "met"}),
    variant("I11 follow-up not agreed", {"follow_up_agreed": False}, {"I11": "not_met"}),
    # E1, E2: gangrene and limb infection
    variant("E1 wet gangrene", {"gangrene": "wet"}, {"E1": "met"}),
    variant("E1 controlled limb infection", {"limb_infection": "controlled"}, {"E1": "met"}),
    variant("E1 uncontrolled limb infection", {"limb_infection": "uncontrolled"}, {"E1": "met"}),
    variant("E1 severe limb infection", {"limb_infection": "severe"}, {"E1": "met"}),
    variant("E2 dry gangrene over half the foot", {"gangrene": "dry_extensive"}, {"E2": "met"}),
    variant("E2 no gangrene", {"gangrene": "none"}, {}),
    # E3: acute arterial failure now
    variant("E3 acute limb ischemia now", {"acute_limb_ischemia_current": True}, {"E3": "met"}),
    variant(
        "E3 never had acute limb ischemia",
        {"acute_limb_ischemia": False, "acute_limb_ischemia_current": None},
        {},
    ),
    # E4: life expectancy < 6 months
    variant("E4 5 months to live", {"life_expectancy_months": 5}, {"E4": "met"}),
    variant("E4 6 months to live", {"life_expectancy_months": 6}, {}),
    variant("E4 7 months to live", {"life_expectancy_months": 7}, {}),
    # E5 - E7
    variant("E5 active malignancy", {"malignancy_active": True}, {"E5": "met"}),
    variant("E5 bone marrow disease", {"bone_marrow_disease": True}, {"E5": "met"}),
    variant("E5 never had cancer", {"malignancy": False, "malignancy_active": None}, {}),
    variant("E6 bleeding", {"bleeding_active": True}, {"E6": "met"}),
    variant("E7 controlled infection", {"systemic_infection": "controlled"}, {"E7": "met"}),
    variant("E7 uncontrolled infection", {"systemic_infection": "uncontrolled"}, {"E7": "met"}),
    # E10: platelets < 50 x10^9/L, WBC < 4 x10^9/L, immunosuppression
    variant("E10 platelets 49.9", {"platelets_10e9_l": 49.9}, {"E10": "met"}),
    variant("E10 platelets 50 at the threshold", {"platelets_10e9_l": 50.0}, {}),
    variant("E10 platelets 50.1", {"platelets_10e9_l": 50.1}, {}),
    variant("E10 WBC 3.9", {"wbc_10e9_l": 3.9}, {"E10": "met"}),
    variant("E10 WBC 4 at the threshold", {"wbc_10e9_l": 4.0}, {}),
    variant("E10 WBC 4.1", {"wbc_10e9_l": 4.1}, {}),
    variant("E10 immunosuppressive therapy", {"immunosuppressive_therapy": True}, {"E10": "met"}),
    # E11, E12, E15, E18
    variant("E11 pronounced neurological deficit", {"neurological_deficit_pronounced": True}, {"E11": "met"}),
    variant("E12 gait disturbance of another cause", {"gait_disturbance_other_cause": True}, {"E12": "met"}),
    variant("E15 type 1 diabetes", {"diabetes": "type1"}, {"E15": "met"}),
    variant("E18 angiography contraindicated", {"angiography_contraindicated": True}, {"E18": "met"}),
    # E16: respiratory complications or LVEF < 25 %
    variant("E16 LVEF 24.9", {"lvef_pct": 24.9}, {"E16": "met"}),
    variant("E16 LVEF 25 at the threshold", {"lvef_pct": 25.0}, {}),
    variant("E16 LVEF 25.1", {"lvef_pct": 25.1}, {}),
    variant("E16 respiratory complications", {"severe_respiratory_disease": True}, {"E16": "met"}),
    # E17: stroke or infarction within 3 calendar months (from 2026-07-01 on)
    variant("E17 stroke on the first day of the window", {"stroke_date": "2026-07-01"}, {"E17": "met"}),
    variant("E17 stroke the day before the window", {"stroke_date": "2026-06-30"}, {}),
    variant(
        "E17 infarction on the first day of the window",
        {"myocardial_infarction_date": "2026-07-01"},
        {"E17": "met"},
    ),
    variant("E17 infarction the day before the window", {"myocardial_infarction_date": "2026-06-30"}, {}),
    variant("E17 no stroke, whatever the date", {"stroke": False, "stroke_date": "2026-09-01"}, {}),
    variant(
        "E17 no stroke or infarction needs no dates",
        {
            "stroke": False,
            "stroke_date": None,
            "myocardial_infarction": False,
            "myocardial_infarction_date": None,
        },
        {},
    ),
    # E19: abuse within 3 months goes to review
    variant(
        "E19 abuse on the first day of the window", {"substance_abuse_date": "2026-07-01"}, {"E19": "unknown"}
    ),
    variant("E19 abuse the day before the window", {"substance_abuse_date": "2026-06-30"}, {}),
    variant(
        "E19 no abuse needs no date",
        {"substance_abuse": False, "substance_abuse_date": None},
        {},
    ),
    # E20: pregnant or lactating women
    variant("E20 pregnant", {"pregnant": True}, {"E20": "met"}),
    variant("E20 lactating", {"lactating": True}, {"E20": "met"}),
    variant("E20 a man with a pregnancy recorded by mistake", {"sex": "male", "pregnant": True}, {}),
    # E21: HIV, HCV, HBV by HBsAg or DNA
    variant("E21 HIV positive", {"hiv_positive": True}, {"E21": "met"}),
    variant("E21 HCV antibody positive", {"hcv_antibody_positive": True}, {"E21": "met"}),
    variant("E21 HBsAg positive", {"hbsag_positive": True}, {"E21": "met"}),
    variant("E21 HBV DNA detectable", {"hbv_dna_detectable": True}, {"E21": "met"}),
]


@pytest.mark.parametrize(("changes", "outcomes"), VARIANTS)
def test_a_variant_of_the_baseline_gives_the_expected_outcomes_and_decision(changes, outcomes):
    kept, removed = split(changes)
    evaluation = evaluate(kept, removed)
    expected = BASELINE_OUTCOMES | outcomes
    assert {r.id: r.outcome for r in evaluation.results} == expected
    assert all(r.missing == () for r in evaluation.results)
    assert (evaluation.decision, evaluation.deciding) == expected_decision(expected)


def test_windows_and_age_count_from_the_submission_date_without_a_consent_date():
    changes = {"birth_date": "1945-10-15", "stroke_date": "2026-07-15"}
    with_consent = evaluate(changes)
    assert (result_of(with_consent, "I1").outcome, result_of(with_consent, "E17").outcome) == ("met", "met")
    without = evaluate(changes, remove=("consent_date",))
    # 81 at submission; the stroke is more than 3 months before 2026-11-01
    assert (result_of(without, "I1").outcome, result_of(without, "E17").outcome) == ("not_met", "not_met")
    assert (without.decision, without.deciding) == ("ineligible", ("I1",))


@pytest.mark.parametrize(("stroke_date", "outcome"), [("2026-02-28", "met"), ("2026-02-27", "not_met")])
def test_the_3_month_window_from_a_may_31_consent_starts_on_february_28(stroke_date, outcome):
    evaluation = evaluate({"consent_date": "2026-05-31", "stroke_date": stroke_date})
    assert result_of(evaluation, "E17").outcome == outcome


def test_the_e10_thresholds_are_the_protocols_counts_per_microlitre_in_canonical_units():
    factor, offset = COUNT_UNITS["/uL"]
    assert (50_000 * factor + offset, 4_000 * factor + offset) == pytest.approx((50.0, 4.0))


# ---- deliberate unknowns: the protocol leaves the call to the physician ----

REVIEWS = [
    pytest.param("I1", {"race": "unknown"}, "Caucasian origin", id="I1 race recorded as unknown"),
    pytest.param(
        "I9", {"hypertension_treated": False}, "medication is needed", id="I9 untreated hypertension"
    ),
    pytest.param("I10", {"creatinine_x_uln": 1.5}, "Serum creatinine", id="I10 creatinine slightly high"),
    pytest.param("I10", {"bilirubin_x_uln": 1.5}, "Bilirubin", id="I10 bilirubin slightly high"),
    pytest.param("I10", {"alt_x_uln": 1.5}, "ALT", id="I10 ALT slightly high"),
    pytest.param("I10", {"ast_x_uln": 1.5}, "AST", id="I10 AST slightly high"),
    pytest.param("E19", {"substance_abuse_date": "2026-09-01"}, "severe", id="E19 recent abuse"),
]


def test_the_review_cases_cover_every_criterion_with_a_review_rule():
    with_review = {c["id"] for c in DOCUMENT["criteria"] if has_review(c.get("rule"))}
    assert with_review == {case.values[0] for case in REVIEWS}


@pytest.mark.parametrize(("cid", "changes", "fragment"), REVIEWS)
def test_a_review_reading_answers_unknown_with_a_note_for_the_investigator(cid, changes, fragment):
    evaluation = evaluate(changes)
    result = result_of(evaluation, cid)
    assert (result.outcome, result.missing) == ("unknown", ())
    assert result.note
    assert fragment in result.note
    assert (evaluation.decision, evaluation.deciding) == ("needs_review", (cid,))


def test_two_slightly_high_liver_values_give_both_notes_on_i10():
    result = result_of(evaluate({"alt_x_uln": 1.2, "ast_x_uln": 1.4}), "I10")
    assert (result.outcome, result.missing) == ("unknown", ())
    assert "ALT is above" in result.note
    assert "AST is above" in result.note


def test_a_slightly_high_value_with_another_value_missing_lists_the_missing_one_and_keeps_the_note():
    result = result_of(evaluate({"creatinine_x_uln": 1.5}, remove=("bilirubin_x_uln",)), "I10")
    assert (result.outcome, result.missing) == ("unknown", ("bilirubin_x_uln",))
    assert "Serum creatinine" in result.note


def test_a_value_at_twice_the_limit_is_not_met_even_when_another_is_slightly_high():
    result = result_of(evaluate({"creatinine_x_uln": 1.5, "ast_x_uln": 2.0}), "I10")
    assert (result.outcome, result.note) == ("not_met", None)


# ---- absent observations ----

# (criterion, variable removed from the baseline, outcome, missing, overall decision)


def unknown_without(cid: str, name: str, decision: str = "needs_review") -> tuple:
    return (cid, name, "unknown", (name,), decision)


REMOVALS = [
    ("I1", "birth_date", "unknown", ("age_years", "birth_date"), "needs_review"),
    ("I2", "atherosclerosis", "met", (), "eligible"),  # diabetic background
    ("I2", "diabetes", "met", (), "needs_review"),  # atherosclerotic background; E15 is unknown
    ("I3", "fontaine_stage", "met", (), "eligible"),  # Rutherford 5 qualifies
    ("I3", "rutherford_grade", "met", (), "eligible"),  # Fontaine 4 qualifies
    ("I5", "emergency_amputation_indicated", "met", (), "eligible"),  # only a minor amputation needed
    ("I5", "amputation_needed", "met", (), "needs_review"),  # no emergency; E14 is unknown
    ("I7", "ankle_systolic_pressure_mmhg", "met", (), "eligible"),  # ABI 0.45 qualifies
    ("I8", "diabetes", "met", (), "needs_review"),  # treated and HbA1c 7.2 either way; E15 is unknown
    ("I9", "hypertension", "met", (), "eligible"),  # treated either way
    ("I9", "hypertension_uncontrolled", "met", (), "eligible"),  # treated
    ("E3", "acute_limb_ischemia", "not_met", (), "eligible"),  # not current either way
    ("E5", "malignancy", "not_met", (), "eligible"),  # not active either way
    ("E17", "stroke", "not_met", (), "eligible"),  # dated outside the window
    ("E17", "myocardial_infarction", "not_met", (), "eligible"),
    ("E19", "substance_abuse", "not_met", (), "eligible"),  # dated outside the window
    ("E20", "sex", "not_met", (), "eligible"),  # neither pregnant nor lactating
] + [
    unknown_without(cid, name)
    for cid, names in {
        "I1": ["race"],
        "I3": ["cli_diagnosed"],
        "I4": ["revascularization", "revascularization_relieved_symptoms", "conservative_therapy_ongoing"],
        "I6": ["revascularization_outcome_questionable"],
        "I7": ["abi"],  # an ankle pressure of 75 does not qualify
        "I8": ["diabetes_treated", "hba1c_pct"],
        "I9": ["hypertension_treated"],
        "I10": ["creatinine_x_uln", "bilirubin_x_uln", "alt_x_uln", "ast_x_uln"],
        "I11": ["consent_signed", "follow_up_agreed"],
        "E1": ["gangrene", "limb_infection"],
        "E2": ["gangrene"],
        "E3": ["acute_limb_ischemia_current"],
        "E4": ["life_expectancy_months"],
        "E5": ["malignancy_active", "bone_marrow_disease"],
        "E6": ["bleeding_active"],
        "E7": ["systemic_infection"],
        "E8": ["creatinine_x_uln"],
        "E9": ["bilirubin_x_uln", "alt_x_uln", "ast_x_uln"],
        "E10": ["platelets_10e9_l", "wbc_10e9_l", "immunosuppressive_therapy"],
        "E11": ["neurological_deficit_pronounced"],
        "E12": ["gait_disturbance_other_cause"],
        "E14": ["amputation_needed"],
        "E15": ["diabetes"],
        "E16": ["severe_respiratory_disease", "lvef_pct"],
        "E17": ["stroke_date", "myocardial_infarction_date"],
        "E18": ["angiography_contraindicated"],
        "E19": ["substance_abuse_date"],
        "E20": ["pregnant", "lactating"],
        "E21": ["hiv_positive", "hcv_antibody_positive", "hbsag_positive", "hbv_dna_detectable"],
        "E22": ["consent_signed"],
    }.items()
    for name in names
]


def test_the_removal_cases_cover_every_variable_of_every_criterion():
    covered = {(cid, name) for cid, name, *_ in REMOVALS}
    read = {
        (c["id"], "birth_date" if name == "age" else name)
        for c in DOCUMENT["criteria"]
        for name in rule_variables(c.get("rule"))
    }
    assert covered == read


@pytest.mark.parametrize(
    ("cid", "name", "outcome", "missing", "decision"),
    REMOVALS,
    ids=[f"{cid} without {name}" for cid, name, *_ in REMOVALS],
)
def test_removing_a_variable_from_the_baseline_gives_the_outcome_its_reading_implies(
    cid, name, outcome, missing, decision
):
    evaluation = evaluate(remove=(name,))
    result = result_of(evaluation, cid)
    assert (result.outcome, result.missing, result.note) == (outcome, missing, None)
    assert evaluation.decision == decision


# Where the baseline made a variable irrelevant, a changed applicant makes it matter again. Each case is
# (label, changes, removed, criterion, outcome); an unknown outcome lists exactly the removed variables.
KLEENE = [
    ("I1 too old, race absent", {"birth_date": "1945-10-01"}, ("race",), "I1", "not_met"),
    ("I2 no diabetes, atherosclerosis absent", {"diabetes": "none"}, ("atherosclerosis",), "I2", "unknown"),
    ("I2 no atherosclerosis, diabetes absent", {"atherosclerosis": False}, ("diabetes",), "I2", "unknown"),
    ("I3 Rutherford 3, Fontaine absent", {"rutherford_grade": 3}, ("fontaine_stage",), "I3", "unknown"),
    ("I3 Fontaine 2, Rutherford absent", {"fontaine_stage": 2}, ("rutherford_grade",), "I3", "unknown"),
    (
        "I3 CLI not diagnosed, stages absent",
        {"cli_diagnosed": False},
        ("fontaine_stage", "rutherford_grade"),
        "I3",
        "not_met",
    ),
    (
        "I4 never revascularized, the rest absent",
        {"revascularization": "none"},
        ("revascularization_relieved_symptoms", "conservative_therapy_ongoing"),
        "I4",
        "not_met",
    ),
    (
        "I5 major amputation, emergency absent",
        {"amputation_needed": "major"},
        ("emergency_amputation_indicated",),
        "I5",
        "unknown",
    ),
    (
        "I5 emergency, amputation level absent",
        {"emergency_amputation_indicated": True},
        ("amputation_needed",),
        "I5",
        "unknown",
    ),
    ("I7 ABI 0.6, ankle pressure absent", {"abi": 0.6}, ("ankle_systolic_pressure_mmhg",), "I7", "unknown"),
    ("I7 both absent", {}, ("abi", "ankle_systolic_pressure_mmhg"), "I7", "unknown"),
    ("I8 HbA1c 9, diabetes absent", {"hba1c_pct": 9.0}, ("diabetes",), "I8", "unknown"),
    (
        "I8 no diabetes, treatment and HbA1c absent",
        {"diabetes": "none"},
        ("diabetes_treated", "hba1c_pct"),
        "I8",
        "met",
    ),
    (
        "I9 untreated and uncontrolled, hypertension absent",
        {"hypertension_treated": False, "hypertension_uncontrolled": True},
        ("hypertension",),
        "I9",
        "unknown",
    ),
    (
        "I9 untreated, control absent",
        {"hypertension_treated": False},
        ("hypertension_uncontrolled",),
        "I9",
        "unknown",
    ),
    (
        "I9 no hypertension, the rest absent",
        {"hypertension": False},
        ("hypertension_treated", "hypertension_uncontrolled"),
        "I9",
        "met",
    ),
    ("E1 wet gangrene, infection absent", {"gangrene": "wet"}, ("limb_infection",), "E1", "met"),
    (
        "E3 acute ischemia now, history absent",
        {"acute_limb_ischemia_current": True},
        ("acute_limb_ischemia",),
        "E3",
        "unknown",
    ),
    ("E5 active cancer, history absent", {"malignancy_active": True}, ("malignancy",), "E5", "unknown"),
    ("E10 platelets 40, WBC absent", {"platelets_10e9_l": 40.0}, ("wbc_10e9_l",), "E10", "met"),
    ("E17 recent stroke date, stroke absent", {"stroke_date": "2026-08-01"}, ("stroke",), "E17", "unknown"),
    ("E17 no stroke, its date absent", {"stroke": False}, ("stroke_date",), "E17", "not_met"),
    (
        "E19 recent abuse date, abuse absent",
        {"substance_abuse_date": "2026-08-01"},
        ("substance_abuse",),
        "E19",
        "unknown",
    ),
    ("E20 pregnant, sex absent", {"pregnant": True}, ("sex",), "E20", "unknown"),
    (
        "E20 a man, pregnancy and lactation absent",
        {"sex": "male"},
        ("pregnant", "lactating"),
        "E20",
        "not_met",
    ),
]


@pytest.mark.parametrize(
    ("changes", "removed", "cid", "outcome"), [pytest.param(*case[1:], id=case[0]) for case in KLEENE]
)
def test_an_absent_variable_matters_exactly_when_kleene_logic_says_so(changes, removed, cid, outcome):
    result = result_of(evaluate(changes, removed), cid)
    missing = tuple(sorted(removed)) if outcome == "unknown" else ()
    assert (result.outcome, result.missing, result.note) == (outcome, missing, None)


@pytest.mark.parametrize("name", sorted(COMPILED.variables - {"age"}))
def test_an_absent_variable_never_makes_the_baseline_ineligible(name):
    evaluation = evaluate(remove=(name,))
    assert evaluation.decision in {"eligible", "needs_review"}
    unknown = tuple(r.id for r in evaluation.results if r.outcome == "unknown")
    assert evaluation.deciding == unknown
    assert all(name in r.missing for r in evaluation.results if r.outcome == "unknown")


def test_an_applicant_with_nothing_recorded_needs_review_listing_what_is_missing():
    evaluation = COMPILED.evaluate({}, SUBMITTED)
    assert evaluation.decision == "needs_review"
    assert evaluation.deciding == tuple(cid for cid in IDS if cid != JUDGMENT)
    assert result_of(evaluation, "I7").missing == ("abi", "ankle_systolic_pressure_mmhg")
    assert result_of(evaluation, "E21").missing == (
        "hbsag_positive",
        "hbv_dna_detectable",
        "hcv_antibody_positive",
        "hiv_positive",
    )
    assert all(r.note is None for r in evaluation.results)
