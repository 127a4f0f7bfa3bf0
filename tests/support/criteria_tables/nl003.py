"""NL003-CLI-III-2's table of cases (services/trials/seed_data/NL003-CLI-III-2.criteria.yaml): 6 inclusions,
19 exclusions and two catch-all sub-clauses; E3, E14.a and E17 are left to the investigator's judgment.
Data only: tests/unit/test_trial_criteria.py runs it."""

from __future__ import annotations

from tests.support.criteria_cases import CONSENT, Trial, only, unknown_without, variant, without

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


CASES = [
    # ---- thresholds and windows, one variant at a time (the whole evaluation is checked) ----
    # (criterion, changes, its outcome, outcomes of other criteria that change with it)
    # I1: age at the consent date, inclusive 20..80; a birthday on the consent day counts
    variant("I1", {"birth_date": "2006-10-01"}, "met"),
    variant("I1", {"birth_date": "2006-10-02"}, "not_met"),
    variant("I1", {"birth_date": "1945-10-02"}, "met"),
    variant("I1", {"birth_date": "1945-10-01"}, "not_met"),
    variant("I1", {"birth_date": "2006-10-15"}, "not_met"),  # 19 at consent, 20 at submission
    variant("I1", {"birth_date": "1945-10-15"}, "met"),  # 80 at consent, 81 at submission
    variant("I1", {"birth_date": None, "age_years": 19}, "not_met"),
    variant("I1", {"birth_date": None, "age_years": 20}, "met"),
    variant("I1", {"birth_date": None, "age_years": 80}, "met"),
    variant("I1", {"birth_date": None, "age_years": 81}, "not_met"),
    variant("I1", {"age_years": 99}, "met"),  # birth_date wins
    # I2: CLI, Rutherford exactly 5
    variant("I2", {"cli_diagnosed": False}, "not_met"),
    variant("I2", {"rutherford_grade": 4}, "not_met"),
    variant("I2", {"rutherford_grade": 6}, "not_met"),
    # I2: ankle pressure <= 70 mmHg (restored sign)
    variant("I2", {"ankle_systolic_pressure_mmhg": 69.9}, "met"),
    variant("I2", {"ankle_systolic_pressure_mmhg": 70.0}, "met"),
    variant("I2", {"ankle_systolic_pressure_mmhg": 70.1}, "not_met"),
    # I2: ABI <= 0.5 (restored sign), the ankle pressure no longer qualifying
    variant("I2", {"ankle_systolic_pressure_mmhg": 80.0, "abi": 0.49}, "met"),
    variant("I2", {"ankle_systolic_pressure_mmhg": 80.0, "abi": 0.50}, "met"),
    variant("I2", {"ankle_systolic_pressure_mmhg": 80.0, "abi": 0.51}, "not_met"),
    # I2: TcPO2 < 30 mmHg (strict, as printed)
    variant("I2", {"ankle_systolic_pressure_mmhg": 80.0, "tcpo2_mmhg": 29.9}, "met"),
    variant("I2", {"ankle_systolic_pressure_mmhg": 80.0, "tcpo2_mmhg": 30.0}, "not_met"),
    variant("I2", {"ankle_systolic_pressure_mmhg": 80.0, "tcpo2_mmhg": 30.1}, "not_met"),
    # I2: stenosis >= 70% (restored sign) or occlusion, on DSA or CTA only
    variant("I2", {"infrainguinal_stenosis_pct": 69.9}, "not_met"),
    variant("I2", {"infrainguinal_stenosis_pct": 70.0}, "met"),
    variant("I2", {"infrainguinal_stenosis_pct": 70.1}, "met"),
    variant("I2", {"infrainguinal_stenosis_pct": 100.0}, "met"),
    variant("I2", {"infrainguinal_imaging": "dsa"}, "met"),
    variant("I2", {"infrainguinal_imaging": "mra"}, "not_met"),
    variant("I2", {"infrainguinal_imaging": "ultrasound"}, "not_met"),
    # I2: imaging no older than 3 calendar months before consent; screening imaging after consent counts
    variant("I2", {"infrainguinal_imaging_date": "2026-07-01"}, "met"),
    variant("I2", {"infrainguinal_imaging_date": "2026-06-30"}, "not_met"),
    variant("I2", {"infrainguinal_imaging_date": "2026-10-20"}, "met"),
    # I3: ulcer present at least 14 days at consent
    variant("I3", {"ulcer_onset_date": "2026-09-16"}, "met"),  # 15 days
    variant("I3", {"ulcer_onset_date": "2026-09-17"}, "met"),  # 14 days
    variant("I3", {"ulcer_onset_date": "2026-09-18"}, "not_met"),  # 13 days
    # I3: largest ulcer <= 10 cm2, 1 to 3 ulcers
    variant("I3", {"ulcer_largest_area_cm2": 9.9}, "met"),
    variant("I3", {"ulcer_largest_area_cm2": 10.0}, "met"),
    variant("I3", {"ulcer_largest_area_cm2": 10.1}, "not_met"),
    variant("I3", {"ulcer_count": 0}, "not_met"),
    variant("I3", {"ulcer_count": 1}, "met"),
    variant("I3", {"ulcer_count": 3}, "met"),
    variant("I3", {"ulcer_count": 4}, "not_met"),
    # I3: only partial (dry) toe gangrene; exposed bone also excludes under E5
    variant("I3", {"gangrene": "dry_toe"}, "met"),
    variant("I3", {"gangrene": "dry_extensive"}, "not_met"),
    variant("I3", {"gangrene": "wet"}, "not_met"),
    variant("I3", {"ulcer_exposes_bone_or_joint": True}, "not_met", {"E5": "met"}),
    # I4: compliance >= 70% (restored sign)
    variant("I4", {"diary_compliance_pct": 69.9}, "not_met"),
    variant("I4", {"diary_compliance_pct": 70.0}, "met"),
    variant("I4", {"diary_compliance_pct": 70.1}, "met"),
    variant("I4", {"follow_up_agreed": False}, "not_met"),
    # I5: contraception for those of childbearing potential; pregnancy test for such women
    variant("I5", {"contraception_agreed": False}, "not_met"),
    variant("I5", {"pregnancy_test_negative": False}, "not_met"),
    variant("I5", {"childbearing_potential": False, "contraception_agreed": False}, "met"),
    variant("I5", {"childbearing_potential": False, "pregnancy_test_negative": None}, "met"),
    variant("I5", {"sex": "male", "pregnancy_test_negative": None}, "met"),  # a man needs no pregnancy test
    variant("I5", {"sex": "male", "contraception_agreed": False}, "not_met"),
    variant("I6", {"consent_signed": False}, "not_met"),
    # E1: a current acute episode
    variant("E1", {"acute_limb_ischemia_current": True}, "met"),
    variant("E1", {"acute_limb_ischemia": False, "acute_limb_ischemia_current": None}, "not_met"),
    # E2: revascularization, sympathectomy or amputation within 4 weeks (28 days)
    variant("E2", {"revascularization_date": "2026-09-03"}, "met"),
    variant("E2", {"revascularization_date": "2026-09-02"}, "not_met"),
    variant("E2", {"revascularization": "surgical", "revascularization_date": "2026-09-20"}, "met"),
    variant("E2", {"revascularization": "none", "revascularization_date": None}, "not_met"),
    variant("E2", {"sympathectomy_or_amputation_date": "2026-09-03"}, "met"),
    variant("E2", {"sympathectomy_or_amputation_date": "2026-09-02"}, "not_met"),
    variant(
        "E2", {"sympathectomy_or_amputation": False, "sympathectomy_or_amputation_date": None}, "not_met"
    ),
    # E4: iliac stenosis >= 70% (restored sign)
    variant("E4", {"iliac_stenosis_pct": 69.9}, "not_met"),
    variant("E4", {"iliac_stenosis_pct": 70.0}, "met"),
    variant("E4", {"iliac_stenosis_pct": 70.1}, "met"),
    # E5: severe infection excludes; an uncontrolled one goes to review
    variant("E5", {"limb_infection": "none"}, "not_met"),
    variant("E5", {"limb_infection": "severe"}, "met"),
    variant("E5", {"limb_infection": "uncontrolled"}, "unknown", note=("severe",)),
    variant(
        "E5",
        {"limb_infection": "uncontrolled", "ulcer_exposes_bone_or_joint": True},
        "met",
        {"I3": "not_met"},
    ),
    # E6: NYHA III-IV in heart failure
    variant("E6", {"nyha_class": 1}, "not_met"),
    variant("E6", {"nyha_class": 3}, "met"),
    variant("E6", {"nyha_class": 4}, "met"),
    variant("E6", {"heart_failure": False, "nyha_class": None}, "not_met"),
    # E7: stroke, myocardial infarction or unstable angina within 3 calendar months
    variant("E7", {"stroke_date": "2026-07-01"}, "met"),
    variant("E7", {"stroke_date": "2026-06-30"}, "not_met"),
    variant("E7", {"myocardial_infarction_date": "2026-07-01"}, "met"),
    variant("E7", {"myocardial_infarction_date": "2026-06-30"}, "not_met"),
    variant("E7", {"unstable_angina_date": "2026-07-01"}, "met"),
    variant("E7", {"unstable_angina_date": "2026-06-30"}, "not_met"),
    variant("E7", {"stroke": False, "stroke_date": None}, "not_met"),
    # E8: SBP >= 180 or DBP >= 110 (restored signs) on three or more drugs
    variant("E8", {"systolic_bp_mmhg": 179.9}, "not_met"),
    variant("E8", {"systolic_bp_mmhg": 180.0}, "met"),
    variant("E8", {"systolic_bp_mmhg": 180.1}, "met"),
    variant("E8", {"diastolic_bp_mmhg": 109.9}, "not_met"),
    variant("E8", {"diastolic_bp_mmhg": 110.0}, "met"),
    variant("E8", {"diastolic_bp_mmhg": 110.1}, "met"),
    variant("E8", {"antihypertensive_drug_count": 2, "systolic_bp_mmhg": 190.0}, "not_met"),
    variant("E8", {"antihypertensive_drug_count": 4, "diastolic_bp_mmhg": 115.0}, "met"),
    variant("E8", {"hypertension": False, "systolic_bp_mmhg": 190.0}, "not_met"),
    # E9: proliferative diabetic retinopathy, or no retinopathy exam
    variant("E9", {"diabetic_retinopathy_grade": 3}, "not_met"),
    variant("E9", {"diabetic_retinopathy_grade": 4}, "met"),
    variant("E9", {"retinopathy_exam_available": False, "diabetic_retinopathy_grade": None}, "met"),
    variant("E9", {"diabetes": "none", "diabetic_retinopathy_grade": None, "hba1c_pct": None}, "not_met"),
    variant("E9", {"diabetes": "none", "retinopathy_exam_available": False}, "met"),
    variant("E10", {"can_describe_symptoms": False}, "met"),
    # E11: only decompensated liver disease
    variant("E11", {"liver_disease": "none"}, "not_met"),
    variant("E11", {"liver_disease": "severe"}, "not_met"),
    variant("E11", {"liver_disease": "decompensated"}, "met"),
    variant("E12", {"immunosuppressive_therapy": True}, "met"),
    variant("E12", {"chemoradiotherapy_current": True}, "met"),
    # E13: HIV or HCV excludes; HBsAg goes to review, unless something else excludes
    variant("E13", {"hiv_positive": True}, "met"),
    variant("E13", {"hcv_antibody_positive": True}, "met"),
    variant("E13", {"hbsag_positive": True}, "unknown", note=("stable", "HBsAg")),
    variant("E13", {"hbsag_positive": True, "hiv_positive": True}, "met"),
    # E14: Hb < 80 g/L, WBC < 3.0 x10^9/L, platelets < 75 x10^9/L, AST/ALT/creatinine > 3 x ULN
    variant("E14", {"hemoglobin_g_l": 79.9}, "met"),
    variant("E14", {"hemoglobin_g_l": 80.0}, "not_met"),
    variant("E14", {"hemoglobin_g_l": 80.1}, "not_met"),
    variant("E14", {"wbc_10e9_l": 2.99}, "met"),
    variant("E14", {"wbc_10e9_l": 3.0}, "not_met"),
    variant("E14", {"wbc_10e9_l": 3.01}, "not_met"),
    variant("E14", {"platelets_10e9_l": 74.9}, "met"),
    variant("E14", {"platelets_10e9_l": 75.0}, "not_met"),
    variant("E14", {"platelets_10e9_l": 75.1}, "not_met"),
    variant("E14", {"ast_x_uln": 2.99}, "not_met"),
    variant("E14", {"ast_x_uln": 3.0}, "not_met"),
    variant("E14", {"ast_x_uln": 3.01}, "met"),
    variant("E14", {"alt_x_uln": 2.99}, "not_met"),
    variant("E14", {"alt_x_uln": 3.0}, "not_met"),
    variant("E14", {"alt_x_uln": 3.01}, "met"),
    variant("E14", {"creatinine_x_uln": 2.99}, "not_met"),
    variant("E14", {"creatinine_x_uln": 3.0}, "not_met"),
    variant("E14", {"creatinine_x_uln": 3.01}, "met"),
    # E15: HbA1c > 10% in a diabetic
    variant("E15", {"hba1c_pct": 9.9}, "not_met"),
    variant("E15", {"hba1c_pct": 10.0}, "not_met"),
    variant("E15", {"hba1c_pct": 10.1}, "met"),
    variant("E15", {"diabetes": "type1", "hba1c_pct": 11.0}, "met"),
    variant("E15", {"diabetes": "none", "hba1c_pct": None, "diabetic_retinopathy_grade": None}, "not_met"),
    variant("E16", {"malignancy": True}, "met"),
    variant("E16", {"tumor_screen_abnormal": True}, "met"),
    # E17.a: predicted survival under 12 months
    variant("E17.a", {"life_expectancy_months": 11}, "met"),
    variant("E17.a", {"life_expectancy_months": 12}, "not_met"),
    variant("E17.a", {"life_expectancy_months": 13}, "not_met"),
    # E18: more than 14 units a week, or substance abuse
    variant("E18", {"alcohol_units_per_week": 13.9}, "not_met"),
    variant("E18", {"alcohol_units_per_week": 14.0}, "not_met"),
    variant("E18", {"alcohol_units_per_week": 14.1}, "met"),
    variant("E18", {"substance_abuse": True}, "met"),
    # E19: another trial within 3 calendar months
    variant("E19", {"other_trial_date": "2026-07-01"}, "met"),
    variant("E19", {"other_trial_date": "2026-06-30"}, "not_met"),
    variant("E19", {"other_trial": False, "other_trial_date": None}, "not_met"),
    # windows and age count from the submission date without a consent date: 20 at submission; imaging of
    # 2026-07-15 is more than 3 months before 2026-11-01
    variant(
        "I2",
        {"birth_date": "2006-10-15", "infrainguinal_imaging_date": "2026-07-15", "consent_date": None},
        "not_met",
    ),
    # the imaging window from a May 31 consent starts on February 28 (the ulcer and angina moved into range)
    only(
        "I2",
        {
            "consent_date": "2026-05-31",
            "infrainguinal_imaging_date": "2026-02-28",
            "ulcer_onset_date": "2026-05-01",
            "unstable_angina_date": "2025-12-01",
        },
        "met",
    ),
    only(
        "I2",
        {
            "consent_date": "2026-05-31",
            "infrainguinal_imaging_date": "2026-02-27",
            "ulcer_onset_date": "2026-05-01",
            "unstable_angina_date": "2025-12-01",
        },
        "not_met",
    ),
    # an applicant without heart failure, hypertension or diabetes needs none of their details
    variant(
        "E6",
        {
            "heart_failure": False,
            "hypertension": False,
            "diabetes": "none",
            **dict.fromkeys(
                ("nyha_class", "antihypertensive_drug_count", "systolic_bp_mmhg", "diastolic_bp_mmhg")
            ),
            **dict.fromkeys(("diabetic_retinopathy_grade", "hba1c_pct")),
        },
        "not_met",
        label="no heart failure, hypertension or diabetes needs none of their details",
    ),
    # ---- absent observations: (criterion, variable removed, outcome, overall decision, missing) ----
    without("I1", "birth_date", "unknown", "needs_review", ("age_years", "birth_date")),
    without("I2", "abi", "met", "eligible"),  # the ankle pressure qualifies already
    without("I2", "tcpo2_mmhg", "met", "eligible"),
    without("I5", "childbearing_potential", "met", "eligible"),  # contraception agreed, test negative anyway
    without("I5", "sex", "met", "eligible"),  # the pregnancy test is negative anyway
    without("E1", "acute_limb_ischemia", "not_met", "eligible"),  # no current episode either way
    without("E2", "revascularization", "not_met", "eligible"),  # its date is outside the window anyway
    without("E2", "sympathectomy_or_amputation", "not_met", "eligible"),
    without("E6", "heart_failure", "not_met", "eligible"),  # NYHA II either way
    without("E7", "stroke", "not_met", "eligible"),  # the dates are outside the window anyway
    without("E7", "myocardial_infarction", "not_met", "eligible"),
    without("E7", "unstable_angina", "not_met", "eligible"),
    without("E8", "hypertension", "not_met", "eligible"),  # the pressure is below both limits
    without("E8", "antihypertensive_drug_count", "not_met", "eligible"),
    without("E9", "diabetes", "not_met", "eligible"),  # grade 2 and examined
    without("E15", "diabetes", "not_met", "eligible"),  # HbA1c 7.8% anyway
    without("E19", "other_trial", "not_met", "eligible"),
    *unknown_without(
        "I2",
        "cli_diagnosed",
        "rutherford_grade",
        "ankle_systolic_pressure_mmhg",  # ABI and TcPO2 do not qualify
        "infrainguinal_stenosis_pct",
        "infrainguinal_imaging",
        "infrainguinal_imaging_date",
    ),
    *unknown_without(
        "I3",
        "ulcer_onset_date",
        "ulcer_largest_area_cm2",
        "ulcer_count",
        "ulcer_exposes_bone_or_joint",
        "gangrene",
    ),
    *unknown_without("I4", "follow_up_agreed", "diary_compliance_pct"),
    *unknown_without("I5", "contraception_agreed", "pregnancy_test_negative"),
    *unknown_without("I6", "consent_signed"),
    *unknown_without("E1", "acute_limb_ischemia_current"),
    *unknown_without("E2", "revascularization_date", "sympathectomy_or_amputation_date"),
    *unknown_without("E4", "iliac_stenosis_pct"),
    *unknown_without("E5", "limb_infection", "ulcer_exposes_bone_or_joint"),
    *unknown_without("E6", "nyha_class"),
    *unknown_without("E7", "stroke_date", "myocardial_infarction_date", "unstable_angina_date"),
    *unknown_without("E8", "systolic_bp_mmhg", "diastolic_bp_mmhg"),
    *unknown_without("E9", "diabetic_retinopathy_grade", "retinopathy_exam_available"),
    *unknown_without("E10", "can_describe_symptoms"),
    *unknown_without("E11", "liver_disease"),
    *unknown_without("E12", "immunosuppressive_therapy", "chemoradiotherapy_current"),
    *unknown_without("E13", "hiv_positive", "hcv_antibody_positive", "hbsag_positive"),
    *unknown_without(
        "E14",
        "hemoglobin_g_l",
        "wbc_10e9_l",
        "platelets_10e9_l",
        "ast_x_uln",
        "alt_x_uln",
        "creatinine_x_uln",
    ),
    *unknown_without("E15", "hba1c_pct"),
    *unknown_without("E16", "malignancy", "tumor_screen_abnormal"),
    *unknown_without("E17.a", "life_expectancy_months"),
    *unknown_without("E18", "alcohol_units_per_week", "substance_abuse"),
    *unknown_without("E19", "other_trial_date"),
]

TRIAL = Trial(
    criteria_file="NL003-CLI-III-2.criteria.yaml",
    registry_file="NL003-CLI-III-2.json",
    criteria=(
        *[f"I{n}" for n in range(1, 7)],
        *[f"E{n}" for n in range(1, 15)],
        "E14.a",
        *[f"E{n}" for n in range(15, 18)],
        "E17.a",
        "E18",
        "E19",
    ),
    judgments=("E3", "E14.a", "E17"),
    baseline=BASELINE,
    best_decision=("eligible", ()),
    cases=tuple(CASES),
    nothing_recorded_missing={
        "I2": (
            "abi",
            "ankle_systolic_pressure_mmhg",
            "cli_diagnosed",
            "infrainguinal_imaging",
            "infrainguinal_imaging_date",
            "infrainguinal_stenosis_pct",
            "rutherford_grade",
            "tcpo2_mmhg",
        )
    },
    registry={
        "trial_id": "NL003-CLI-III-2",
        "nct_id": None,
        "org_study_id": "NL003-CLI-III-2",
        "sponsor": "Beijing Northland Biotech",
        "overall_status": "COMPLETED",
        "phases": ["PHASE3"],
        "enrollment_target": 242,
        "enrollment_type": "ACTUAL",
        "minimum_age": "20 Years",
        "maximum_age": "80 Years",
        "sex": "ALL",
        "sites": [("Peking Union Medical College Hospital", "Beijing", "China", "COMPLETED")],
    },
)
