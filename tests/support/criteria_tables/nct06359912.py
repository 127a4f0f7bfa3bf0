"""NCT06359912's table of cases (services/trials/seed_data/NCT06359912.criteria.yaml): 7 inclusions, 18
exclusions, E18 left to judgment. Data only: tests/unit/test_trial_criteria.py runs it."""

from __future__ import annotations

from tests.support.criteria_cases import CONSENT, Trial, only, unknown_without, variant, without

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


CASES = [
    # ---- thresholds and windows, one variant at a time (the whole evaluation is checked) ----
    # I1: age at the consent date, inclusive 18..80; birthday on the consent day counts
    variant("I1", {"birth_date": "2008-10-01"}, "met"),
    variant("I1", {"birth_date": "2008-10-02"}, "not_met"),
    variant("I1", {"birth_date": "1945-10-02"}, "met"),
    variant("I1", {"birth_date": "1945-10-01"}, "not_met"),
    variant("I1", {"birth_date": "2008-10-15"}, "not_met"),  # 17 at consent, 18 at submission
    variant("I1", {"birth_date": "1945-10-15"}, "met"),  # 80 at consent, 81 at submission
    variant("I1", {"birth_date": None, "age_years": 17}, "not_met"),
    variant("I1", {"birth_date": None, "age_years": 18}, "met"),
    variant("I1", {"birth_date": None, "age_years": 80}, "met"),
    variant("I1", {"birth_date": None, "age_years": 81}, "not_met"),
    variant("I1", {"age_years": 99}, "met"),  # birth_date wins
    # I2: ABI <= 0.60 as the only qualifying symptom
    variant("I2", {"rest_pain": False, "abi": 0.60}, "met"),
    variant("I2", {"rest_pain": False, "abi": 0.59}, "met"),
    variant("I2", {"rest_pain": False, "abi": 0.61}, "not_met"),
    variant("I2", {"rest_pain": False, "severe_claudication": True}, "met"),
    variant("I2", {"cli_diagnosed": False}, "not_met"),
    # I2: Rutherford 3..5
    variant("I2", {"rutherford_grade": 2}, "not_met"),
    variant("I2", {"rutherford_grade": 3}, "met"),
    variant("I2", {"rutherford_grade": 5}, "met"),
    variant("I2", {"rutherford_grade": 6}, "not_met"),
    # I2: prior revascularization
    variant("I2", {"revascularization": "none"}, "met"),
    variant("I2", {"revascularization": "surgical"}, "not_met"),
    variant("I2", {"revascularization_relieved_symptoms": True}, "not_met"),
    variant("I2", {"revascularization_date": "2026-08-31"}, "met"),
    variant("I2", {"revascularization_date": "2026-09-01"}, "not_met"),
    variant("I2", {"revascularization_date": "2026-09-25"}, "not_met"),
    # I3: stenosis >= 70% on imaging no older than one calendar month
    variant("I3", {"infrainguinal_stenosis_pct": 69.0}, "not_met"),
    variant("I3", {"infrainguinal_stenosis_pct": 69.9}, "not_met"),
    variant("I3", {"infrainguinal_stenosis_pct": 70.0}, "met"),
    variant("I3", {"infrainguinal_stenosis_pct": 100.0}, "met"),
    variant("I3", {"infrainguinal_imaging_date": "2026-09-01"}, "met"),
    variant("I3", {"infrainguinal_imaging_date": "2026-08-31"}, "not_met"),
    variant("I3", {"infrainguinal_imaging_date": "2026-10-20"}, "met"),  # screening imaging after consent
    variant("I3", {"infrainguinal_imaging": "dsa"}, "met"),
    variant("I3", {"infrainguinal_imaging": "mra"}, "met"),
    variant("I3", {"infrainguinal_imaging": "ultrasound"}, "met"),
    # I4: Wagner <= 4
    variant("I4", {"wagner_grade": 0}, "met"),
    variant("I4", {"wagner_grade": 4}, "met"),
    variant("I4", {"wagner_grade": 5}, "not_met"),
    # I5: rest pain strictly more than 14 days before consent
    variant("I5", {"rest_pain_onset_date": "2026-09-16"}, "met"),
    variant("I5", {"rest_pain_onset_date": "2026-09-17"}, "not_met"),
    variant("I5", {"rest_pain_onset_date": "2026-09-30"}, "not_met"),
    variant(
        "I5", {"rest_pain": False, "severe_claudication": True, "rest_pain_onset_date": "2026-09-30"}, "met"
    ),
    variant("I5", {"rest_pain": False, "severe_claudication": True, "rest_pain_onset_date": None}, "met"),
    # I6, I7
    variant("I6", {"contraception_agreed": False}, "not_met"),
    variant("I6", {"childbearing_potential": False, "contraception_agreed": False}, "met"),
    variant("I7", {"consent_signed": False}, "not_met"),
    variant("I7", {"follow_up_agreed": False}, "not_met"),
    # E1, E2: another trial within 4 weeks (28 days)
    variant("E1", {"prior_cell_therapy": True}, "met"),
    variant("E2", {"other_trial_date": "2026-09-03"}, "met"),
    variant("E2", {"other_trial_date": "2026-09-02"}, "not_met"),
    variant("E2", {"other_trial": False, "other_trial_date": "2026-09-20"}, "not_met"),
    # E3: iliac stenosis >= 75%
    variant("E3", {"iliac_stenosis_pct": 74.0}, "not_met"),
    variant("E3", {"iliac_stenosis_pct": 74.9}, "not_met"),
    variant("E3", {"iliac_stenosis_pct": 75.0}, "met"),
    # E4: uncontrolled infections; a severe limb infection goes to review
    variant("E4", {"limb_infection": "none"}, "not_met"),
    variant("E4", {"limb_infection": "uncontrolled"}, "met"),
    variant("E4", {"limb_infection": "severe"}, "unknown", note=("controllable",)),
    variant("E4", {"limb_infection": "severe", "systemic_infection": "uncontrolled"}, "met"),
    variant("E4", {"systemic_infection": "controlled"}, "not_met"),
    variant("E4", {"systemic_infection": "uncontrolled"}, "met"),
    # E5: proliferative diabetic retinopathy
    variant("E5", {"diabetic_retinopathy_grade": 3}, "not_met"),
    variant("E5", {"diabetic_retinopathy_grade": 4}, "met"),
    variant("E5", {"diabetes": "type1", "diabetic_retinopathy_grade": 4}, "met"),
    variant("E5", {"diabetes": "none", "diabetic_retinopathy_grade": 4}, "not_met"),
    variant("E5", {"diabetes": "none", "diabetic_retinopathy_grade": None}, "not_met"),
    # E6: acute limb ischemia within 14 days, or going on now
    variant("E6", {"acute_limb_ischemia_date": "2026-09-17"}, "met"),
    variant("E6", {"acute_limb_ischemia_date": "2026-09-16"}, "not_met"),
    variant("E6", {"acute_limb_ischemia_current": True}, "met"),
    variant("E6", {"acute_limb_ischemia": False, "acute_limb_ischemia_date": None}, "not_met"),
    # E7
    variant("E7", {"hypertension_uncontrolled": True}, "met"),
    variant("E7", {"hypertension": False, "hypertension_uncontrolled": None}, "not_met"),
    # E8-E11: any history excludes
    variant("E8", {"stroke": True}, "met"),
    variant("E8", {"heart_failure": True}, "met"),
    variant("E8", {"unstable_angina": True}, "met"),
    variant("E8", {"myocardial_infarction": True}, "met"),
    variant("E8", {"severe_arrhythmia": True}, "met"),
    variant("E9", {"liver_disease": "none"}, "not_met"),
    variant("E9", {"liver_disease": "severe"}, "met"),
    variant("E9", {"liver_disease": "decompensated"}, "met"),
    variant("E9", {"kidney_disease_severe": True}, "met"),
    variant("E9", {"coagulation_disorder_severe": True}, "met"),
    variant("E9", {"anemia_severe": True}, "met"),
    variant("E10", {"severe_respiratory_disease": True}, "met"),
    variant("E11", {"hbsag_positive": True}, "met"),
    variant("E11", {"hcv_antibody_positive": True}, "met"),
    variant("E11", {"syphilis_positive": True}, "met"),
    variant("E11", {"hiv_positive": True}, "met"),
    # E12: malignancy within 5 years, or active
    variant("E12", {"malignancy_date": "2021-10-01"}, "met"),
    variant("E12", {"malignancy_date": "2021-09-30"}, "not_met"),
    variant("E12", {"malignancy_active": True}, "met"),
    variant("E12", {"malignancy": False, "malignancy_date": "2026-01-01"}, "not_met"),
    # E13: survival under 12 months
    variant("E13", {"life_expectancy_months": 11}, "met"),
    variant("E13", {"life_expectancy_months": 12}, "not_met"),
    variant("E13", {"mental_illness": True}, "met"),
    variant("E13", {"cognitive_impairment": True}, "met"),
    variant("E14", {"immunodeficiency": True}, "met"),
    # E15: pregnant or lactating women; men need no pregnancy data
    variant("E15", {"pregnant": True}, "met"),
    variant("E15", {"lactating": True}, "met"),
    variant("E15", {"sex": "male", "pregnant": None, "lactating": None}, "not_met"),
    variant("E15", {"sex": "male", "pregnant": True}, "not_met"),
    # E16: more than 2 drug allergies
    variant("E16", {"drug_allergy_count": 2}, "not_met"),
    variant("E16", {"drug_allergy_count": 3}, "met"),
    variant("E17", {"substance_abuse": True}, "met"),
    # windows and age count from the submission date without a consent date: 18 at submission; imaging of
    # 2026-09-20 is more than a month before 2026-11-01
    variant("I3", {"birth_date": "2008-10-15", "consent_date": None}, "not_met"),
    # the imaging window from a March 31 consent ends on February 28
    only("I3", {"consent_date": "2026-03-31", "infrainguinal_imaging_date": "2026-02-28"}, "met"),
    only("I3", {"consent_date": "2026-03-31", "infrainguinal_imaging_date": "2026-02-27"}, "not_met"),
    # an applicant who never revascularized needs no revascularization details
    variant(
        "I2",
        {
            "revascularization": "none",
            "revascularization_relieved_symptoms": None,
            "revascularization_date": None,
        },
        "met",
    ),
    # ---- absent observations: (criterion, variable removed, outcome, overall decision, missing) ----
    without("I1", "birth_date", "unknown", "needs_review", ("age_years", "birth_date")),
    without("I2", "severe_claudication", "met", "eligible"),  # rest pain qualifies already
    without("I2", "abi", "met", "eligible"),
    without("I5", "rest_pain", "met", "needs_review"),  # the onset is old enough either way; I2 is unknown
    without("I6", "childbearing_potential", "met", "eligible"),  # contraception agreed either way
    without("E2", "other_trial", "not_met", "eligible"),  # its date is outside the window anyway
    without("E5", "diabetes", "not_met", "eligible"),  # grade 2 is not proliferative anyway
    without("E6", "acute_limb_ischemia", "not_met", "eligible"),  # not current, and long ago
    without("E7", "hypertension", "not_met", "eligible"),  # controlled either way
    without("E12", "malignancy", "not_met", "eligible"),  # inactive and more than 5 years ago
    without("E15", "sex", "not_met", "eligible"),  # neither pregnant nor lactating
    *unknown_without(
        "I2",
        "cli_diagnosed",
        "revascularization",
        "revascularization_relieved_symptoms",
        "revascularization_date",
        "rutherford_grade",
        "rest_pain",  # ABI 0.75 does not qualify
    ),
    *unknown_without(
        "I3", "infrainguinal_stenosis_pct", "infrainguinal_imaging", "infrainguinal_imaging_date"
    ),
    *unknown_without("I4", "wagner_grade"),
    *unknown_without("I5", "rest_pain_onset_date"),
    *unknown_without("I6", "contraception_agreed"),
    *unknown_without("I7", "consent_signed", "follow_up_agreed"),
    *unknown_without("E1", "prior_cell_therapy"),
    *unknown_without("E2", "other_trial_date"),
    *unknown_without("E3", "iliac_stenosis_pct"),
    *unknown_without("E4", "limb_infection", "systemic_infection"),
    *unknown_without("E5", "diabetic_retinopathy_grade"),
    *unknown_without("E6", "acute_limb_ischemia_current", "acute_limb_ischemia_date"),
    *unknown_without("E7", "hypertension_uncontrolled"),
    *unknown_without(
        "E8", "stroke", "heart_failure", "unstable_angina", "myocardial_infarction", "severe_arrhythmia"
    ),
    *unknown_without(
        "E9", "liver_disease", "kidney_disease_severe", "coagulation_disorder_severe", "anemia_severe"
    ),
    *unknown_without("E10", "severe_respiratory_disease"),
    *unknown_without("E11", "hbsag_positive", "hcv_antibody_positive", "syphilis_positive", "hiv_positive"),
    *unknown_without("E12", "malignancy_active", "malignancy_date"),
    *unknown_without("E13", "mental_illness", "cognitive_impairment", "life_expectancy_months"),
    *unknown_without("E14", "immunodeficiency"),
    *unknown_without("E15", "pregnant", "lactating"),
    *unknown_without("E16", "drug_allergy_count"),
    *unknown_without("E17", "substance_abuse"),
]

TRIAL = Trial(
    criteria_file="NCT06359912.criteria.yaml",
    registry_file="NCT06359912.json",
    criteria=(*[f"I{n}" for n in range(1, 8)], *[f"E{n}" for n in range(1, 19)]),
    judgments=("E18",),
    baseline=BASELINE,
    best_decision=("eligible", ()),
    cases=tuple(CASES),
    nothing_recorded_missing={
        "I3": ("infrainguinal_imaging", "infrainguinal_imaging_date", "infrainguinal_stenosis_pct")
    },
    registry={
        "trial_id": "NCT06359912",
        "nct_id": "NCT06359912",
        "org_study_id": None,
        "sponsor": "Allife Medical Science and Technology Co., Ltd.",
        "phases": ["PHASE1"],
        "overall_status": "RECRUITING",
        "enrollment_target": 27,
        "enrollment_type": "ESTIMATED",
        "minimum_age": "18 Years",
        "maximum_age": "80 Years",
        "sex": "ALL",
        "conditions": ["Critical Limb Ischemia"],
        "sites": [("Beijing site (contact: Hui Shi)", "Beijing", "China", "RECRUITING")],
    },
)
