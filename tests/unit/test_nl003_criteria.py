"""The criteria of NL003-CLI-III-2 (services/trials/seed_data/NL003-CLI-III-2.criteria.yaml), one by one."""

from __future__ import annotations

import json
import re
from datetime import date
from importlib import resources

import pytest

from services.eligibility import Evaluation
from services.trials.criteria import bundled_document, compile_document
from services.trials.registry import trial_from_record

CRITERIA_FILE = "NL003-CLI-III-2.criteria.yaml"
DOCUMENT = bundled_document(CRITERIA_FILE)
COMPILED = compile_document(DOCUMENT)
SUBMITTED = date(2026, 11, 1)
CONSENT = "2026-10-01"
IDS = [c["id"] for c in DOCUMENT["criteria"]]
JUDGMENTS = [c["id"] for c in DOCUMENT["criteria"] if c.get("judgment")]
INCLUSIONS = [cid for cid in IDS if cid.startswith("I")]
EXCLUSIONS = [cid for cid in IDS if cid.startswith("E") and cid not in JUDGMENTS]

# Conditions and findings the baseline applicant does not have (bools read by E10-E13, E16, E18).
NEVER = [
    *["immunosuppressive_therapy", "chemoradiotherapy_current"],
    *["hiv_positive", "hcv_antibody_positive", "hbsag_positive"],
    *["malignancy", "tumor_screen_abnormal", "substance_abuse", "ulcer_exposes_bone_or_joint"],
]
# A 52-year-old woman with two small ischaemic ulcers (Rutherford 5), qualifying on ankle pressure alone,
# with old events and procedures outside every window: eligible, every variable read is present.
BASELINE = dict.fromkeys(NEVER, False) | {
    "consent_date": CONSENT,
    "birth_date": "1974-03-15",
    "sex": "female",
    # I2: only the ankle pressure qualifies (ABI and TcPO2 do not)
    "cli_diagnosed": True,
    "rutherford_grade": 5,
    "ankle_systolic_pressure_mmhg": 64.0,
    "abi": 0.55,
    "tcpo2_mmhg": 32.0,
    "infrainguinal_stenosis_pct": 85.0,
    "infrainguinal_imaging": "cta",
    "infrainguinal_imaging_date": "2026-08-10",
    # I3
    "ulcer_onset_date": "2026-08-15",
    "ulcer_largest_area_cm2": 4.5,
    "ulcer_count": 2,
    "gangrene": "none",
    # I4-I6
    "follow_up_agreed": True,
    "diary_compliance_pct": 92.0,
    "childbearing_potential": True,
    "contraception_agreed": True,
    "pregnancy_test_negative": True,
    "consent_signed": True,
    # E1, E2
    "acute_limb_ischemia": True,
    "acute_limb_ischemia_current": False,
    "revascularization": "endovascular",
    "revascularization_date": "2026-06-15",
    "sympathectomy_or_amputation": True,
    "sympathectomy_or_amputation_date": "2025-01-10",
    # E4-E6
    "iliac_stenosis_pct": 40.0,
    "limb_infection": "controlled",
    "heart_failure": True,
    "nyha_class": 2,
    # E7: every event happened, none within 3 months
    "stroke": True,
    "stroke_date": "2024-05-01",
    "myocardial_infarction": True,
    "myocardial_infarction_date": "2025-11-20",
    "unstable_angina": True,
    "unstable_angina_date": "2026-03-01",
    # E8: three drugs, controlled
    "hypertension": True,
    "antihypertensive_drug_count": 3,
    "systolic_bp_mmhg": 150.0,
    "diastolic_bp_mmhg": 85.0,
    # E9, E10, E11, E15
    "diabetes": "type2",
    "diabetic_retinopathy_grade": 2,
    "retinopathy_exam_available": True,
    "can_describe_symptoms": True,
    "liver_disease": "mild",
    "hba1c_pct": 7.8,
    # E14
    "hemoglobin_g_l": 118.0,
    "wbc_10e9_l": 6.2,
    "platelets_10e9_l": 210.0,
    "ast_x_uln": 1.1,
    "alt_x_uln": 0.9,
    "creatinine_x_uln": 1.4,
    # E17.a, E18, E19
    "life_expectancy_months": 48,
    "alcohol_units_per_week": 4.0,
    "other_trial": True,
    "other_trial_date": "2025-11-20",
}
BASELINE_OUTCOMES = (
    {cid: "met" for cid in INCLUSIONS}
    | {cid: "not_met" for cid in EXCLUSIONS}
    | dict.fromkeys(JUDGMENTS, "judgment")
)


def evaluate(changes: dict | None = None, remove: tuple[str, ...] = ()) -> Evaluation:
    observations = {**BASELINE, **(changes or {})}
    for name in remove:
        del observations[name]
    return COMPILED.evaluate(observations, SUBMITTED)


def outcome_of(evaluation: Evaluation, cid: str):
    (result,) = [r for r in evaluation.results if r.id == cid]
    return result


def rule_variables(node) -> set[str]:
    if isinstance(node, dict):
        names = {node["var"]} if "var" in node else set()
        return names.union(*(rule_variables(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(rule_variables(item) for item in node))
    return set()


def criterion_text(cid: str) -> str:
    return next(c.text for c in COMPILED.criteria if c.id == cid)


def record() -> dict:
    text = (
        resources.files("services.trials.seed_data")
        .joinpath("NL003-CLI-III-2.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


# ---- the file and the baseline ----


def test_the_criteria_file_follows_the_protocol_numbering_with_two_catch_all_sub_clauses():
    expected = [f"I{n}" for n in range(1, 7)] + [f"E{n}" for n in range(1, 20)]
    expected[expected.index("E14") + 1 : expected.index("E14") + 1] = ["E14.a"]
    expected[expected.index("E17") + 1 : expected.index("E17") + 1] = ["E17.a"]
    assert [c.id for c in COMPILED.criteria] == expected
    assert COMPILED.trial_id == "NL003-CLI-III-2"


def test_only_the_investigators_own_clauses_are_judgment_criteria():
    assert JUDGMENTS == ["E3", "E14.a", "E17"]


def test_every_restored_threshold_carries_a_comment_saying_so():
    text = resources.files("services.trials.seed_data").joinpath(CRITERIA_FILE).read_text(encoding="utf-8")
    blocks = dict(re.findall(r"\n  - id: (\S+)\n(.*?)(?=\n  - id: |\Z)", text, flags=re.S))
    counts = {cid: blocks[cid].count("# restored") for cid in ("I2", "I4", "E4", "E8", "E14")}
    assert counts == {"I2": 3, "I4": 1, "E4": 1, "E8": 1, "E14": 4}
    assert "[≤] 70 mmHg" in criterion_text("I2")
    assert "[≥] 70%" in criterion_text("E4")


def test_the_baseline_applicant_is_eligible():
    evaluation = evaluate()
    assert (evaluation.decision, evaluation.deciding) == ("eligible", ())


@pytest.mark.parametrize("cid", IDS)
def test_the_baseline_applicant_has_the_passing_outcome_on_each_criterion(cid):
    result = outcome_of(evaluate(), cid)
    assert (result.outcome, result.missing, result.note) == (BASELINE_OUTCOMES[cid], (), None)


def test_the_baseline_sets_every_variable_the_criteria_read():
    assert (COMPILED.variables - {"age"}) <= set(BASELINE)
    assert "age" in COMPILED.variables


# ---- thresholds and windows ----

# (criterion, changes, its outcome, outcomes of other criteria that change with it); None removes a value.
VARIANTS = [
    # I1: age at the consent date, inclusive 20..80; a birthday on the consent day counts
    ("I1", {"birth_date": "2006-10-01"}, "met", {}),
    ("I1", {"birth_date": "2006-10-02"}, "not_met", {}),
    ("I1", {"birth_date": "1945-10-02"}, "met", {}),
    ("I1", {"birth_date": "1945-10-01"}, "not_met", {}),
    ("I1", {"birth_date": "2006-10-15"}, "not_met", {}),  # 19 at consent, 20 at submission
    ("I1", {"birth_date": "1945-10-15"}, "met", {}),  # 80 at consent, 81 at submission
    ("I1", {"birth_date": None, "age_years": 19}, "not_met", {}),
    ("I1", {"birth_date": None, "age_years": 20}, "met", {}),
    ("I1", {"birth_date": None, "age_years": 80}, "met", {}),
    ("I1", {"birth_date": None, "age_years": 81}, "not_met", {}),
    ("I1", {"age_years": 99}, "met", {}),  # birth_date wins
    # I2: CLI, Rutherford exactly 5
    ("I2", {"cli_diagnosed": False}, "not_met", {}),
    ("I2", {"rutherford_grade": 4}, "not_met", {}),
    ("I2", {"rutherford_grade": 6}, "not_met", {}),
    # I2: ankle pressure <= 70 mmHg (restored sign)
    ("I2", {"ankle_systolic_pressure_mmhg": 69.9}, "met", {}),
    ("I2", {"ankle_systolic_pressure_mmhg": 70.0}, "met", {}),
    ("I2", {"ankle_systolic_pressure_mmhg": 70.1}, "not_met", {}),
    # I2: ABI <= 0.5 (restored sign), the ankle pressure no longer qualifying
    ("I2", {"ankle_systolic_pressure_mmhg": 80.0, "abi": 0.49}, "met", {}),
    ("I2", {"ankle_systolic_pressure_mmhg": 80.0, "abi": 0.50}, "met", {}),
    ("I2", {"ankle_systolic_pressure_mmhg": 80.0, "abi": 0.51}, "not_met", {}),
    # I2: TcPO2 < 30 mmHg (strict, as printed)
    ("I2", {"ankle_systolic_pressure_mmhg": 80.0, "tcpo2_mmhg": 29.9}, "met", {}),
    ("I2", {"ankle_systolic_pressure_mmhg": 80.0, "tcpo2_mmhg": 30.0}, "not_met", {}),
    ("I2", {"ankle_systolic_pressure_mmhg": 80.0, "tcpo2_mmhg": 30.1}, "not_met", {}),
    # I2: stenosis >= 70% (restored sign) or occlusion, on DSA or CTA only
    ("I2", {"infrainguinal_stenosis_pct": 69.9}, "not_met", {}),
    ("I2", {"infrainguinal_stenosis_pct": 70.0}, "met", {}),
    ("I2", {"infrainguinal_stenosis_pct": 70.1}, "met", {}),
    ("I2", {"infrainguinal_stenosis_pct": 100.0}, "met", {}),
    ("I2", {"infrainguinal_imaging": "dsa"}, "met", {}),
    ("I2", {"infrainguinal_imaging": "mra"}, "not_met", {}),
    ("I2", {"infrainguinal_imaging": "ultrasound"}, "not_met", {}),
    # I2: imaging no older than 3 calendar months before consent; screening imaging after consent counts
    ("I2", {"infrainguinal_imaging_date": "2026-07-01"}, "met", {}),
    ("I2", {"infrainguinal_imaging_date": "2026-06-30"}, "not_met", {}),
    ("I2", {"infrainguinal_imaging_date": "2026-10-20"}, "met", {}),
    # I3: ulcer present at least 14 days at consent
    ("I3", {"ulcer_onset_date": "2026-09-16"}, "met", {}),  # 15 days
    ("I3", {"ulcer_onset_date": "2026-09-17"}, "met", {}),  # 14 days
    ("I3", {"ulcer_onset_date": "2026-09-18"}, "not_met", {}),  # 13 days
    # I3: largest ulcer <= 10 cm2, 1 to 3 ulcers
    ("I3", {"ulcer_largest_area_cm2": 9.9}, "met", {}),
    ("I3", {"ulcer_largest_area_cm2": 10.0}, "met", {}),
    ("I3", {"ulcer_largest_area_cm2": 10.1}, "not_met", {}),
    ("I3", {"ulcer_count": 0}, "not_met", {}),
    ("I3", {"ulcer_count": 1}, "met", {}),
    ("I3", {"ulcer_count": 3}, "met", {}),
    ("I3", {"ulcer_count": 4}, "not_met", {}),
    # I3: only partial (dry) toe gangrene; exposed bone also excludes under E5
    ("I3", {"gangrene": "dry_toe"}, "met", {}),
    ("I3", {"gangrene": "dry_extensive"}, "not_met", {}),
    ("I3", {"gangrene": "wet"}, "not_met", {}),
    ("I3", {"ulcer_exposes_bone_or_joint": True}, "not_met", {"E5": "met"}),
    # I4: compliance >= 70% (restored sign)
    ("I4", {"diary_compliance_pct": 69.9}, "not_met", {}),
    ("I4", {"diary_compliance_pct": 70.0}, "met", {}),
    ("I4", {"diary_compliance_pct": 70.1}, "met", {}),
    ("I4", {"follow_up_agreed": False}, "not_met", {}),
    # I5: contraception for those of childbearing potential; pregnancy test for such women
    ("I5", {"contraception_agreed": False}, "not_met", {}),
    ("I5", {"pregnancy_test_negative": False}, "not_met", {}),
    ("I5", {"childbearing_potential": False, "contraception_agreed": False}, "met", {}),
    ("I5", {"childbearing_potential": False, "pregnancy_test_negative": None}, "met", {}),
    ("I5", {"sex": "male", "pregnancy_test_negative": None}, "met", {}),
    ("I5", {"sex": "male", "contraception_agreed": False}, "not_met", {}),
    ("I6", {"consent_signed": False}, "not_met", {}),
    # E1: a current acute episode
    ("E1", {"acute_limb_ischemia_current": True}, "met", {}),
    ("E1", {"acute_limb_ischemia": False, "acute_limb_ischemia_current": None}, "not_met", {}),
    # E2: revascularization, sympathectomy or amputation within 4 weeks (28 days)
    ("E2", {"revascularization_date": "2026-09-03"}, "met", {}),
    ("E2", {"revascularization_date": "2026-09-02"}, "not_met", {}),
    ("E2", {"revascularization": "surgical", "revascularization_date": "2026-09-20"}, "met", {}),
    ("E2", {"revascularization": "none", "revascularization_date": None}, "not_met", {}),
    ("E2", {"sympathectomy_or_amputation_date": "2026-09-03"}, "met", {}),
    ("E2", {"sympathectomy_or_amputation_date": "2026-09-02"}, "not_met", {}),
    ("E2", {"sympathectomy_or_amputation": False, "sympathectomy_or_amputation_date": None}, "not_met", {}),
    # E4: iliac stenosis >= 70% (restored sign)
    ("E4", {"iliac_stenosis_pct": 69.9}, "not_met", {}),
    ("E4", {"iliac_stenosis_pct": 70.0}, "met", {}),
    ("E4", {"iliac_stenosis_pct": 70.1}, "met", {}),
    # E5: severe infection excludes; an uncontrolled one goes to review
    ("E5", {"limb_infection": "none"}, "not_met", {}),
    ("E5", {"limb_infection": "severe"}, "met", {}),
    ("E5", {"limb_infection": "uncontrolled"}, "unknown", {}),
    ("E5", {"limb_infection": "uncontrolled", "ulcer_exposes_bone_or_joint": True}, "met", {"I3": "not_met"}),
    # E6: NYHA III-IV in heart failure
    ("E6", {"nyha_class": 1}, "not_met", {}),
    ("E6", {"nyha_class": 3}, "met", {}),
    ("E6", {"nyha_class": 4}, "met", {}),
    ("E6", {"heart_failure": False, "nyha_class": None}, "not_met", {}),
    # E7: stroke, myocardial infarction or unstable angina within 3 calendar months
    ("E7", {"stroke_date": "2026-07-01"}, "met", {}),
    ("E7", {"stroke_date": "2026-06-30"}, "not_met", {}),
    ("E7", {"myocardial_infarction_date": "2026-07-01"}, "met", {}),
    ("E7", {"myocardial_infarction_date": "2026-06-30"}, "not_met", {}),
    ("E7", {"unstable_angina_date": "2026-07-01"}, "met", {}),
    ("E7", {"unstable_angina_date": "2026-06-30"}, "not_met", {}),
    ("E7", {"stroke": False, "stroke_date": None}, "not_met", {}),
    # E8: SBP >= 180 or DBP >= 110 (restored signs) on three or more drugs
    ("E8", {"systolic_bp_mmhg": 179.9}, "not_met", {}),
    ("E8", {"systolic_bp_mmhg": 180.0}, "met", {}),
    ("E8", {"systolic_bp_mmhg": 180.1}, "met", {}),
    ("E8", {"diastolic_bp_mmhg": 109.9}, "not_met", {}),
    ("E8", {"diastolic_bp_mmhg": 110.0}, "met", {}),
    ("E8", {"diastolic_bp_mmhg": 110.1}, "met", {}),
    ("E8", {"antihypertensive_drug_count": 2, "systolic_bp_mmhg": 190.0}, "not_met", {}),
    ("E8", {"antihypertensive_drug_count": 4, "diastolic_bp_mmhg": 115.0}, "met", {}),
    ("E8", {"hypertension": False, "systolic_bp_mmhg": 190.0}, "not_met", {}),
    # E9: proliferative diabetic retinopathy, or no retinopathy exam
    ("E9", {"diabetic_retinopathy_grade": 3}, "not_met", {}),
    ("E9", {"diabetic_retinopathy_grade": 4}, "met", {}),
    ("E9", {"retinopathy_exam_available": False, "diabetic_retinopathy_grade": None}, "met", {}),
    ("E9", {"diabetes": "none", "diabetic_retinopathy_grade": None, "hba1c_pct": None}, "not_met", {}),
    ("E9", {"diabetes": "none", "retinopathy_exam_available": False}, "met", {}),
    ("E10", {"can_describe_symptoms": False}, "met", {}),
    # E11: only decompensated liver disease
    ("E11", {"liver_disease": "none"}, "not_met", {}),
    ("E11", {"liver_disease": "severe"}, "not_met", {}),
    ("E11", {"liver_disease": "decompensated"}, "met", {}),
    ("E12", {"immunosuppressive_therapy": True}, "met", {}),
    ("E12", {"chemoradiotherapy_current": True}, "met", {}),
    # E13: HIV or HCV excludes; HBsAg goes to review, unless something else excludes
    ("E13", {"hiv_positive": True}, "met", {}),
    ("E13", {"hcv_antibody_positive": True}, "met", {}),
    ("E13", {"hbsag_positive": True}, "unknown", {}),
    ("E13", {"hbsag_positive": True, "hiv_positive": True}, "met", {}),
    # E14: Hb < 80 g/L, WBC < 3.0 x10^9/L, platelets < 75 x10^9/L, AST/ALT/creatinine > 3 x ULN
    ("E14", {"hemoglobin_g_l": 79.9}, "met", {}),
    ("E14", {"hemoglobin_g_l": 80.0}, "not_met", {}),
    ("E14", {"hemoglobin_g_l": 80.1}, "not_met", {}),
    ("E14", {"wbc_10e9_l": 2.99}, "met", {}),
    ("E14", {"wbc_10e9_l": 3.0}, "not_met", {}),
    ("E14", {"wbc_10e9_l": 3.01}, "not_met", {}),
    ("E14", {"platelets_10e9_l": 74.9}, "met", {}),
    ("E14", {"platelets_10e9_l": 75.0}, "not_met", {}),
    ("E14", {"platelets_10e9_l": 75.1}, "not_met", {}),
    ("E14", {"ast_x_uln": 2.99}, "not_met", {}),
    ("E14", {"ast_x_uln": 3.0}, "not_met", {}),
    ("E14", {"ast_x_uln": 3.01}, "met", {}),
    ("E14", {"alt_x_uln": 2.99}, "not_met", {}),
    ("E14", {"alt_x_uln": 3.0}, "not_met", {}),
    ("E14", {"alt_x_uln": 3.01}, "met", {}),
    ("E14", {"creatinine_x_uln": 2.99}, "not_met", {}),
    ("E14", {"creatinine_x_uln": 3.0}, "not_met", {}),
    ("E14", {"creatinine_x_uln": 3.01}, "met", {}),
    # E15: HbA1c > 10% in a diabetic
    ("E15", {"hba1c_pct": 9.9}, "not_met", {}),
    ("E15", {"hba1c_pct": 10.0}, "not_met", {}),
    ("E15", {"hba1c_pct": 10.1}, "met", {}),
    ("E15", {"diabetes": "type1", "hba1c_pct": 11.0}, "met", {}),
    ("E15", {"diabetes": "none", "hba1c_pct": None, "diabetic_retinopathy_grade": None}, "not_met", {}),
    ("E16", {"malignancy": True}, "met", {}),
    ("E16", {"tumor_screen_abnormal": True}, "met", {}),
    # E17.a: predicted survival under 12 months
    ("E17.a", {"life_expectancy_months": 11}, "met", {}),
    ("E17.a", {"life_expectancy_months": 12}, "not_met", {}),
    ("E17.a", {"life_expectancy_months": 13}, "not_met", {}),
    # E18: more than 14 units a week, or substance abuse
    ("E18", {"alcohol_units_per_week": 13.9}, "not_met", {}),
    ("E18", {"alcohol_units_per_week": 14.0}, "not_met", {}),
    ("E18", {"alcohol_units_per_week": 14.1}, "met", {}),
    ("E18", {"substance_abuse": True}, "met", {}),
    # E19: another trial within 3 calendar months
    ("E19", {"other_trial_date": "2026-07-01"}, "met", {}),
    ("E19", {"other_trial_date": "2026-06-30"}, "not_met", {}),
    ("E19", {"other_trial": False, "other_trial_date": None}, "not_met", {}),
]


def failing(cid: str, outcome: str) -> bool:
    return outcome != BASELINE_OUTCOMES[cid] and outcome != "unknown"


def expected_decision(outcomes: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    excluding = tuple(cid for cid in IDS if failing(cid, outcomes[cid]))
    if excluding:
        return "ineligible", excluding
    unknown = tuple(cid for cid in IDS if outcomes[cid] == "unknown")
    return ("needs_review", unknown) if unknown else ("eligible", ())


@pytest.mark.parametrize(("cid", "changes", "outcome", "also"), VARIANTS)
def test_a_variant_of_the_baseline_gives_the_expected_outcome_and_decision(cid, changes, outcome, also):
    removed = tuple(name for name, value in changes.items() if value is None)
    kept = {name: value for name, value in changes.items() if value is not None}
    evaluation = evaluate(kept, removed)
    result = outcome_of(evaluation, cid)
    assert (result.outcome, result.missing) == (outcome, ())
    expected = BASELINE_OUTCOMES | also | {cid: outcome}
    assert {r.id: r.outcome for r in evaluation.results} == expected
    assert (evaluation.decision, evaluation.deciding) == expected_decision(expected)


def test_the_variants_touch_every_criterion_that_has_a_rule():
    assert {cid for cid, *_ in VARIANTS} == set(IDS) - set(JUDGMENTS)


def test_an_hbsag_positive_applicant_needs_review_with_a_note_on_e13():
    evaluation = evaluate({"hbsag_positive": True})
    result = outcome_of(evaluation, "E13")
    assert (result.outcome, result.missing) == ("unknown", ())
    assert result.note is not None
    assert "stable" in result.note
    assert "HBsAg" in result.note
    assert (evaluation.decision, evaluation.deciding) == ("needs_review", ("E13",))


def test_an_uncontrolled_limb_infection_goes_to_review_asking_whether_it_is_severe():
    result = outcome_of(evaluate({"limb_infection": "uncontrolled"}), "E5")
    assert (result.outcome, result.missing) == ("unknown", ())
    assert result.note is not None
    assert "severe" in result.note


def test_windows_and_age_count_from_the_submission_date_without_a_consent_date():
    changes = {"birth_date": "2006-10-15", "infrainguinal_imaging_date": "2026-07-15"}
    evaluation = evaluate(changes, remove=("consent_date",))
    outcomes = {r.id: r.outcome for r in evaluation.results}
    # 20 at submission; imaging of 2026-07-15 is more than 3 months before 2026-11-01
    assert (outcomes["I1"], outcomes["I2"]) == ("met", "not_met")
    assert (evaluation.decision, evaluation.deciding) == ("ineligible", ("I2",))


@pytest.mark.parametrize(("imaging_date", "outcome"), [("2026-02-28", "met"), ("2026-02-27", "not_met")])
def test_the_imaging_window_from_a_may_31_consent_starts_on_february_28(imaging_date, outcome):
    changes = {"consent_date": "2026-05-31", "infrainguinal_imaging_date": imaging_date}
    changes |= {"ulcer_onset_date": "2026-05-01", "unstable_angina_date": "2025-12-01"}
    assert outcome_of(evaluate(changes), "I2").outcome == outcome


def test_a_man_needs_no_pregnancy_test():
    evaluation = evaluate({"sex": "male"}, ("pregnancy_test_negative",))
    assert outcome_of(evaluation, "I5").outcome == "met"
    assert evaluation.decision == "eligible"


# ---- absent observations ----

# (criterion, variable removed, outcome, missing, overall decision)


def unknown_without(cid: str, name: str) -> tuple:
    return (cid, name, "unknown", (name,), "needs_review")


REMOVALS = [
    ("I1", "birth_date", "unknown", ("age_years", "birth_date"), "needs_review"),
    ("I2", "abi", "met", (), "eligible"),  # the ankle pressure qualifies already
    ("I2", "tcpo2_mmhg", "met", (), "eligible"),
    ("I5", "childbearing_potential", "met", (), "eligible"),  # contraception agreed, test negative anyway
    ("I5", "sex", "met", (), "eligible"),  # the pregnancy test is negative anyway
    ("E1", "acute_limb_ischemia", "not_met", (), "eligible"),  # no current episode either way
    ("E2", "revascularization", "not_met", (), "eligible"),  # its date is outside the window anyway
    ("E2", "sympathectomy_or_amputation", "not_met", (), "eligible"),
    ("E6", "heart_failure", "not_met", (), "eligible"),  # NYHA II either way
    ("E7", "stroke", "not_met", (), "eligible"),  # the dates are outside the window anyway
    ("E7", "myocardial_infarction", "not_met", (), "eligible"),
    ("E7", "unstable_angina", "not_met", (), "eligible"),
    ("E8", "hypertension", "not_met", (), "eligible"),  # the pressure is below both limits
    ("E8", "antihypertensive_drug_count", "not_met", (), "eligible"),
    ("E9", "diabetes", "not_met", (), "eligible"),  # grade 2 and examined
    ("E15", "diabetes", "not_met", (), "eligible"),  # HbA1c 7.8% anyway
    ("E19", "other_trial", "not_met", (), "eligible"),
] + [
    unknown_without(cid, name)
    for cid, names in {
        "I2": [
            "cli_diagnosed",
            "rutherford_grade",
            "ankle_systolic_pressure_mmhg",  # ABI and TcPO2 do not qualify
            "infrainguinal_stenosis_pct",
            "infrainguinal_imaging",
            "infrainguinal_imaging_date",
        ],
        "I3": [
            "ulcer_onset_date",
            "ulcer_largest_area_cm2",
            "ulcer_count",
            "ulcer_exposes_bone_or_joint",
            "gangrene",
        ],
        "I4": ["follow_up_agreed", "diary_compliance_pct"],
        "I5": ["contraception_agreed", "pregnancy_test_negative"],
        "I6": ["consent_signed"],
        "E1": ["acute_limb_ischemia_current"],
        "E2": ["revascularization_date", "sympathectomy_or_amputation_date"],
        "E4": ["iliac_stenosis_pct"],
        "E5": ["limb_infection", "ulcer_exposes_bone_or_joint"],
        "E6": ["nyha_class"],
        "E7": ["stroke_date", "myocardial_infarction_date", "unstable_angina_date"],
        "E8": ["systolic_bp_mmhg", "diastolic_bp_mmhg"],
        "E9": ["diabetic_retinopathy_grade", "retinopathy_exam_available"],
        "E10": ["can_describe_symptoms"],
        "E11": ["liver_disease"],
        "E12": ["immunosuppressive_therapy", "chemoradiotherapy_current"],
        "E13": ["hiv_positive", "hcv_antibody_positive", "hbsag_positive"],
        "E14": [
            "hemoglobin_g_l",
            "wbc_10e9_l",
            "platelets_10e9_l",
            "ast_x_uln",
            "alt_x_uln",
            "creatinine_x_uln",
        ],
        "E15": ["hba1c_pct"],
        "E16": ["malignancy", "tumor_screen_abnormal"],
        "E17.a": ["life_expectancy_months"],
        "E18": ["alcohol_units_per_week", "substance_abuse"],
        "E19": ["other_trial_date"],
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


@pytest.mark.parametrize(("cid", "name", "outcome", "missing", "decision"), REMOVALS)
def test_removing_a_variable_from_the_baseline_gives_the_outcome_its_reading_implies(
    cid, name, outcome, missing, decision
):
    evaluation = evaluate(remove=(name,))
    result = outcome_of(evaluation, cid)
    assert (result.outcome, result.missing, result.note) == (outcome, missing, None)
    assert evaluation.decision == decision


@pytest.mark.parametrize("name", sorted(COMPILED.variables - {"age"}))
def test_an_absent_variable_never_makes_the_baseline_ineligible(name):
    evaluation = evaluate(remove=(name,))
    assert evaluation.decision in {"eligible", "needs_review"}
    unknown = tuple(r.id for r in evaluation.results if r.outcome == "unknown")
    assert evaluation.deciding == unknown
    assert all(name in r.missing for r in evaluation.results if r.outcome == "unknown")


def test_judgment_criteria_do_not_block_eligibility_and_are_not_deciding():
    evaluation = evaluate()
    assert [r.id for r in evaluation.results if r.outcome == "judgment"] == JUDGMENTS
    assert evaluation.decision == "eligible"


def test_an_applicant_with_nothing_recorded_needs_review_listing_what_is_missing():
    evaluation = COMPILED.evaluate({}, SUBMITTED)
    assert evaluation.decision == "needs_review"
    assert evaluation.deciding == tuple(cid for cid in IDS if cid not in JUDGMENTS)
    i2 = outcome_of(evaluation, "I2")
    assert set(i2.missing) == {
        *["cli_diagnosed", "rutherford_grade", "ankle_systolic_pressure_mmhg", "abi", "tcpo2_mmhg"],
        *["infrainguinal_stenosis_pct", "infrainguinal_imaging", "infrainguinal_imaging_date"],
    }


def test_an_applicant_without_heart_failure_hypertension_or_diabetes_needs_none_of_their_details():
    changes = {"heart_failure": False, "hypertension": False, "diabetes": "none"}
    details = ("nyha_class", "antihypertensive_drug_count", "systolic_bp_mmhg", "diastolic_bp_mmhg")
    evaluation = evaluate(changes, (*details, "diabetic_retinopathy_grade", "hba1c_pct"))
    assert (evaluation.decision, evaluation.deciding) == ("eligible", ())


# ---- the registry record ----


def test_the_registry_record_maps_to_the_trial_by_its_protocol_id():
    fields = trial_from_record(record())
    assert (fields.trial_id, fields.nct_id) == ("NL003-CLI-III-2", None)
    assert fields.org_study_id == "NL003-CLI-III-2"
    assert fields.sponsor == "Beijing Northland Biotech"
    assert (fields.overall_status, fields.phases) == ("COMPLETED", ["PHASE3"])
    assert (fields.enrollment_target, fields.enrollment_type) == (242, "ACTUAL")
    assert (fields.minimum_age, fields.maximum_age, fields.sex) == ("20 Years", "80 Years", "ALL")
    assert [(s.name, s.city, s.country, s.status) for s in fields.sites] == [
        ("Peking Union Medical College Hospital", "Beijing", "China", "COMPLETED")
    ]


def test_the_registry_record_keeps_the_nct_number_as_a_secondary_id():
    ident = record()["protocolSection"]["identificationModule"]
    assert "nctId" not in ident
    nct = {"id": "NCT04274049", "type": "REGISTRY", "domain": "ClinicalTrials.gov"}
    assert ident["secondaryIdInfos"] == [nct]


def test_the_registry_record_carries_all_6_inclusion_and_19_exclusion_criteria():
    text = record()["protocolSection"]["eligibilityModule"]["eligibilityCriteria"]
    inclusion, exclusion = text.removeprefix("Inclusion Criteria:\n\n").split("\n\nExclusion Criteria:\n\n")
    assert [line.split(".")[0] for line in inclusion.splitlines()] == [str(n) for n in range(1, 7)]
    assert [line.split(".")[0] for line in exclusion.splitlines()] == [str(n) for n in range(1, 20)]
