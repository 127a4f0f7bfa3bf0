"""The 25 criteria of NCT06359912 (services/trials/seed_data/NCT06359912.criteria.yaml), one by one."""

from __future__ import annotations

from datetime import date

import pytest

from services.eligibility import Evaluation
from services.trials.criteria import bundled_document, compile_document

DOCUMENT = bundled_document("NCT06359912.criteria.yaml")
COMPILED = compile_document(DOCUMENT)
SUBMITTED = date(2026, 11, 1)
CONSENT = "2026-10-01"
IDS = [c["id"] for c in DOCUMENT["criteria"]]
INCLUSIONS = [cid for cid in IDS if cid.startswith("I")]
EXCLUSIONS = [cid for cid in IDS if cid.startswith("E") and cid != "E18"]

# Conditions the baseline applicant never had (each bool read by E1, E8-E11, E13-E15, E17).
NEVER = [
    "prior_cell_therapy",
    *["stroke", "heart_failure", "unstable_angina", "myocardial_infarction", "severe_arrhythmia"],
    *["kidney_disease_severe", "coagulation_disorder_severe", "anemia_severe", "severe_respiratory_disease"],
    *["hbsag_positive", "hcv_antibody_positive", "syphilis_positive", "hiv_positive"],
    *["mental_illness", "cognitive_impairment", "immunodeficiency"],
    *["pregnant", "lactating", "substance_abuse"],
]
# A 45-year-old woman with rest pain after a failed angioplasty: eligible, every variable read is present.
BASELINE = dict.fromkeys(NEVER, False) | {
    "consent_date": CONSENT,
    "birth_date": "1981-04-20",
    "sex": "female",
    # I2
    "cli_diagnosed": True,
    "revascularization": "endovascular",
    "revascularization_relieved_symptoms": False,
    "revascularization_date": "2026-07-15",
    "rutherford_grade": 4,
    "severe_claudication": False,
    "rest_pain": True,
    "abi": 0.75,
    # I3, I4, I5
    "infrainguinal_stenosis_pct": 90.0,
    "infrainguinal_imaging": "cta",
    "infrainguinal_imaging_date": "2026-09-20",
    "wagner_grade": 2,
    "rest_pain_onset_date": "2026-08-01",
    # I6, I7
    "childbearing_potential": True,
    "contraception_agreed": True,
    "consent_signed": True,
    "follow_up_agreed": True,
    # E2-E7
    "other_trial": True,
    "other_trial_date": "2025-06-01",
    "iliac_stenosis_pct": 30.0,
    "limb_infection": "controlled",
    "systemic_infection": "none",
    "diabetes": "type2",
    "diabetic_retinopathy_grade": 2,
    "acute_limb_ischemia": True,
    "acute_limb_ischemia_current": False,
    "acute_limb_ischemia_date": "2026-03-10",
    "hypertension": True,
    "hypertension_uncontrolled": False,
    # E9
    "liver_disease": "mild",
    # E12, E13, E16
    "malignancy": True,
    "malignancy_active": False,
    "malignancy_date": "2015-02-01",
    "life_expectancy_months": 36,
    "drug_allergy_count": 1,
}
BASELINE_OUTCOMES = (
    {cid: "met" for cid in INCLUSIONS} | {cid: "not_met" for cid in EXCLUSIONS} | {"E18": "judgment"}
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


# ---- the baseline ----


def test_the_criteria_file_has_7_inclusions_and_18_exclusions_in_protocol_order():
    expected = [f"I{n}" for n in range(1, 8)] + [f"E{n}" for n in range(1, 19)]
    assert [c.id for c in COMPILED.criteria] == expected
    assert COMPILED.trial_id == "NCT06359912"


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

VARIANTS = [
    # I1: age at the consent date, inclusive 18..80; birthday on the consent day counts
    ("I1", {"birth_date": "2008-10-01"}, "met"),
    ("I1", {"birth_date": "2008-10-02"}, "not_met"),
    ("I1", {"birth_date": "1945-10-02"}, "met"),
    ("I1", {"birth_date": "1945-10-01"}, "not_met"),
    ("I1", {"birth_date": "2008-10-15"}, "not_met"),  # 17 at consent, 18 at submission
    ("I1", {"birth_date": "1945-10-15"}, "met"),  # 80 at consent, 81 at submission
    ("I1", {"birth_date": None, "age_years": 17}, "not_met"),
    ("I1", {"birth_date": None, "age_years": 18}, "met"),
    ("I1", {"birth_date": None, "age_years": 80}, "met"),
    ("I1", {"birth_date": None, "age_years": 81}, "not_met"),
    ("I1", {"age_years": 99}, "met"),  # birth_date wins
    # I2: ABI <= 0.60 as the only qualifying symptom
    ("I2", {"rest_pain": False, "abi": 0.60}, "met"),
    ("I2", {"rest_pain": False, "abi": 0.59}, "met"),
    ("I2", {"rest_pain": False, "abi": 0.61}, "not_met"),
    ("I2", {"rest_pain": False, "severe_claudication": True}, "met"),
    ("I2", {"cli_diagnosed": False}, "not_met"),
    # I2: Rutherford 3..5
    ("I2", {"rutherford_grade": 2}, "not_met"),
    ("I2", {"rutherford_grade": 3}, "met"),
    ("I2", {"rutherford_grade": 5}, "met"),
    ("I2", {"rutherford_grade": 6}, "not_met"),
    # I2: prior revascularization
    ("I2", {"revascularization": "none"}, "met"),
    ("I2", {"revascularization": "surgical"}, "not_met"),
    ("I2", {"revascularization_relieved_symptoms": True}, "not_met"),
    ("I2", {"revascularization_date": "2026-08-31"}, "met"),
    ("I2", {"revascularization_date": "2026-09-01"}, "not_met"),
    ("I2", {"revascularization_date": "2026-09-25"}, "not_met"),
    # I3: stenosis >= 70% on imaging no older than one calendar month
    ("I3", {"infrainguinal_stenosis_pct": 69.0}, "not_met"),
    ("I3", {"infrainguinal_stenosis_pct": 69.9}, "not_met"),
    ("I3", {"infrainguinal_stenosis_pct": 70.0}, "met"),
    ("I3", {"infrainguinal_stenosis_pct": 100.0}, "met"),
    ("I3", {"infrainguinal_imaging_date": "2026-09-01"}, "met"),
    ("I3", {"infrainguinal_imaging_date": "2026-08-31"}, "not_met"),
    ("I3", {"infrainguinal_imaging_date": "2026-10-20"}, "met"),  # screening imaging after consent
    ("I3", {"infrainguinal_imaging": "dsa"}, "met"),
    ("I3", {"infrainguinal_imaging": "mra"}, "met"),
    ("I3", {"infrainguinal_imaging": "ultrasound"}, "met"),
    # I4: Wagner <= 4
    ("I4", {"wagner_grade": 0}, "met"),
    ("I4", {"wagner_grade": 4}, "met"),
    ("I4", {"wagner_grade": 5}, "not_met"),
    # I5: rest pain strictly more than 14 days before consent
    ("I5", {"rest_pain_onset_date": "2026-09-16"}, "met"),
    ("I5", {"rest_pain_onset_date": "2026-09-17"}, "not_met"),
    ("I5", {"rest_pain_onset_date": "2026-09-30"}, "not_met"),
    ("I5", {"rest_pain": False, "severe_claudication": True, "rest_pain_onset_date": "2026-09-30"}, "met"),
    ("I5", {"rest_pain": False, "severe_claudication": True, "rest_pain_onset_date": None}, "met"),
    # I6, I7
    ("I6", {"contraception_agreed": False}, "not_met"),
    ("I6", {"childbearing_potential": False, "contraception_agreed": False}, "met"),
    ("I7", {"consent_signed": False}, "not_met"),
    ("I7", {"follow_up_agreed": False}, "not_met"),
    # E1, E2: another trial within 4 weeks (28 days)
    ("E1", {"prior_cell_therapy": True}, "met"),
    ("E2", {"other_trial_date": "2026-09-03"}, "met"),
    ("E2", {"other_trial_date": "2026-09-02"}, "not_met"),
    ("E2", {"other_trial": False, "other_trial_date": "2026-09-20"}, "not_met"),
    # E3: iliac stenosis >= 75%
    ("E3", {"iliac_stenosis_pct": 74.0}, "not_met"),
    ("E3", {"iliac_stenosis_pct": 74.9}, "not_met"),
    ("E3", {"iliac_stenosis_pct": 75.0}, "met"),
    # E4: uncontrolled infections; a severe limb infection goes to review
    ("E4", {"limb_infection": "none"}, "not_met"),
    ("E4", {"limb_infection": "uncontrolled"}, "met"),
    ("E4", {"limb_infection": "severe"}, "unknown"),
    ("E4", {"limb_infection": "severe", "systemic_infection": "uncontrolled"}, "met"),
    ("E4", {"systemic_infection": "controlled"}, "not_met"),
    ("E4", {"systemic_infection": "uncontrolled"}, "met"),
    # E5: proliferative diabetic retinopathy
    ("E5", {"diabetic_retinopathy_grade": 3}, "not_met"),
    ("E5", {"diabetic_retinopathy_grade": 4}, "met"),
    ("E5", {"diabetes": "type1", "diabetic_retinopathy_grade": 4}, "met"),
    ("E5", {"diabetes": "none", "diabetic_retinopathy_grade": 4}, "not_met"),
    ("E5", {"diabetes": "none", "diabetic_retinopathy_grade": None}, "not_met"),
    # E6: acute limb ischemia within 14 days, or going on now
    ("E6", {"acute_limb_ischemia_date": "2026-09-17"}, "met"),
    ("E6", {"acute_limb_ischemia_date": "2026-09-16"}, "not_met"),
    ("E6", {"acute_limb_ischemia_current": True}, "met"),
    ("E6", {"acute_limb_ischemia": False, "acute_limb_ischemia_date": None}, "not_met"),
    # E7
    ("E7", {"hypertension_uncontrolled": True}, "met"),
    ("E7", {"hypertension": False, "hypertension_uncontrolled": None}, "not_met"),
    # E8-E11: any history excludes
    ("E8", {"stroke": True}, "met"),
    ("E8", {"heart_failure": True}, "met"),
    ("E8", {"unstable_angina": True}, "met"),
    ("E8", {"myocardial_infarction": True}, "met"),
    ("E8", {"severe_arrhythmia": True}, "met"),
    ("E9", {"liver_disease": "none"}, "not_met"),
    ("E9", {"liver_disease": "severe"}, "met"),
    ("E9", {"liver_disease": "decompensated"}, "met"),
    ("E9", {"kidney_disease_severe": True}, "met"),
    ("E9", {"coagulation_disorder_severe": True}, "met"),
    ("E9", {"anemia_severe": True}, "met"),
    ("E10", {"severe_respiratory_disease": True}, "met"),
    ("E11", {"hbsag_positive": True}, "met"),
    ("E11", {"hcv_antibody_positive": True}, "met"),
    ("E11", {"syphilis_positive": True}, "met"),
    ("E11", {"hiv_positive": True}, "met"),
    # E12: malignancy within 5 years, or active
    ("E12", {"malignancy_date": "2021-10-01"}, "met"),
    ("E12", {"malignancy_date": "2021-09-30"}, "not_met"),
    ("E12", {"malignancy_active": True}, "met"),
    ("E12", {"malignancy": False, "malignancy_date": "2026-01-01"}, "not_met"),
    # E13: survival under 12 months
    ("E13", {"life_expectancy_months": 11}, "met"),
    ("E13", {"life_expectancy_months": 12}, "not_met"),
    ("E13", {"mental_illness": True}, "met"),
    ("E13", {"cognitive_impairment": True}, "met"),
    ("E14", {"immunodeficiency": True}, "met"),
    # E15: pregnant or lactating women; men need no pregnancy data
    ("E15", {"pregnant": True}, "met"),
    ("E15", {"lactating": True}, "met"),
    ("E15", {"sex": "male", "pregnant": None, "lactating": None}, "not_met"),
    ("E15", {"sex": "male", "pregnant": True}, "not_met"),
    # E16: more than 2 drug allergies
    ("E16", {"drug_allergy_count": 2}, "not_met"),
    ("E16", {"drug_allergy_count": 3}, "met"),
    ("E17", {"substance_abuse": True}, "met"),
]


def expected_decision(cid: str, outcome: str) -> tuple[str, tuple[str, ...]]:
    if outcome == "unknown":
        return "needs_review", (cid,)
    passing = outcome == BASELINE_OUTCOMES[cid]
    return ("eligible", ()) if passing else ("ineligible", (cid,))


@pytest.mark.parametrize(("cid", "changes", "outcome"), VARIANTS)
def test_a_variant_of_the_baseline_gives_the_expected_outcome_and_decision(cid, changes, outcome):
    removed = tuple(name for name, value in changes.items() if value is None)
    kept = {name: value for name, value in changes.items() if value is not None}
    evaluation = evaluate(kept, removed)
    result = outcome_of(evaluation, cid)
    assert result.outcome == outcome
    assert result.missing == ()
    assert (evaluation.decision, evaluation.deciding) == expected_decision(cid, outcome)
    others = {r.id: r.outcome for r in evaluation.results if r.id != cid}
    assert others == {k: v for k, v in BASELINE_OUTCOMES.items() if k != cid}


def test_a_severe_limb_infection_goes_to_review_with_a_note_for_the_investigator():
    result = outcome_of(evaluate({"limb_infection": "severe"}), "E4")
    assert (result.outcome, result.missing) == ("unknown", ())
    assert result.note is not None
    assert "controllable" in result.note


def test_windows_and_age_count_from_the_submission_date_without_a_consent_date():
    evaluation = evaluate({"birth_date": "2008-10-15"}, remove=("consent_date",))
    outcomes = {r.id: r.outcome for r in evaluation.results}
    # 18 at submission; imaging of 2026-09-20 is more than a month before 2026-11-01
    assert (outcomes["I1"], outcomes["I3"]) == ("met", "not_met")
    assert (evaluation.decision, evaluation.deciding) == ("ineligible", ("I3",))


@pytest.mark.parametrize(("imaging_date", "outcome"), [("2026-02-28", "met"), ("2026-02-27", "not_met")])
def test_imaging_window_from_a_march_31_consent_ends_on_february_28(imaging_date, outcome):
    changes = {"consent_date": "2026-03-31", "infrainguinal_imaging_date": imaging_date}
    assert outcome_of(evaluate(changes), "I3").outcome == outcome


# ---- absent observations ----

# (criterion, variable removed, outcome, missing, overall decision)


def unknown_without(cid: str, name: str) -> tuple:
    return (cid, name, "unknown", (name,), "needs_review")


REMOVALS = [
    ("I1", "birth_date", "unknown", ("age_years", "birth_date"), "needs_review"),
    ("I2", "severe_claudication", "met", (), "eligible"),  # rest pain qualifies already
    ("I2", "abi", "met", (), "eligible"),
    ("I5", "rest_pain", "met", (), "needs_review"),  # the onset is old enough either way; I2 is unknown
    ("I6", "childbearing_potential", "met", (), "eligible"),  # contraception agreed either way
    ("E2", "other_trial", "not_met", (), "eligible"),  # its date is outside the window anyway
    ("E5", "diabetes", "not_met", (), "eligible"),  # grade 2 is not proliferative anyway
    ("E6", "acute_limb_ischemia", "not_met", (), "eligible"),  # not current, and long ago
    ("E7", "hypertension", "not_met", (), "eligible"),  # controlled either way
    ("E12", "malignancy", "not_met", (), "eligible"),  # inactive and more than 5 years ago
    ("E15", "sex", "not_met", (), "eligible"),  # neither pregnant nor lactating
] + [
    unknown_without(cid, name)
    for cid, names in {
        "I2": [
            "cli_diagnosed",
            "revascularization",
            "revascularization_relieved_symptoms",
            "revascularization_date",
            "rutherford_grade",
            "rest_pain",  # ABI 0.75 does not qualify
        ],
        "I3": ["infrainguinal_stenosis_pct", "infrainguinal_imaging", "infrainguinal_imaging_date"],
        "I4": ["wagner_grade"],
        "I5": ["rest_pain_onset_date"],
        "I6": ["contraception_agreed"],
        "I7": ["consent_signed", "follow_up_agreed"],
        "E1": ["prior_cell_therapy"],
        "E2": ["other_trial_date"],
        "E3": ["iliac_stenosis_pct"],
        "E4": ["limb_infection", "systemic_infection"],
        "E5": ["diabetic_retinopathy_grade"],
        "E6": ["acute_limb_ischemia_current", "acute_limb_ischemia_date"],
        "E7": ["hypertension_uncontrolled"],
        "E8": ["stroke", "heart_failure", "unstable_angina", "myocardial_infarction", "severe_arrhythmia"],
        "E9": ["liver_disease", "kidney_disease_severe", "coagulation_disorder_severe", "anemia_severe"],
        "E10": ["severe_respiratory_disease"],
        "E11": ["hbsag_positive", "hcv_antibody_positive", "syphilis_positive", "hiv_positive"],
        "E12": ["malignancy_active", "malignancy_date"],
        "E13": ["mental_illness", "cognitive_impairment", "life_expectancy_months"],
        "E14": ["immunodeficiency"],
        "E15": ["pregnant", "lactating"],
        "E16": ["drug_allergy_count"],
        "E17": ["substance_abuse"],
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


def test_a_judgment_only_criterion_does_not_block_eligibility_and_is_not_deciding():
    evaluation = evaluate()
    assert outcome_of(evaluation, "E18").outcome == "judgment"
    assert "E18" not in evaluation.deciding


def test_an_applicant_with_nothing_recorded_needs_review_listing_what_is_missing():
    evaluation = COMPILED.evaluate({}, SUBMITTED)
    assert evaluation.decision == "needs_review"
    assert evaluation.deciding == tuple(cid for cid in IDS if cid != "E18")
    i3 = outcome_of(evaluation, "I3")
    assert i3.missing == ("infrainguinal_imaging", "infrainguinal_imaging_date", "infrainguinal_stenosis_pct")


def test_an_applicant_who_never_revascularized_needs_no_revascularization_details():
    evaluation = evaluate(
        {"revascularization": "none"},
        remove=("revascularization_relieved_symptoms", "revascularization_date"),
    )
    assert outcome_of(evaluation, "I2").outcome == "met"
    assert evaluation.decision == "eligible"
