"""NCT03239535's table of cases (services/trials/seed_data/NCT03239535.criteria.yaml): 11 inclusions, 22
exclusions, E13 (the physician's catch-all) left to judgment. Data only: tests/unit/test_trial_criteria.py
runs it."""

from __future__ import annotations

from tests.support.criteria_cases import CONSENT, Case, Trial, kleene, only, unknown_without, variant, without

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


def lab_variants(name: str, label: str, failure: str, note: str) -> list[Case]:
    """I10 at and around the upper normal limit, and the failure criterion at and around twice it."""
    return [
        variant("I10", {name: 0.99}, "met", label=f"{label} 0.99 x ULN is normal"),
        variant("I10", {name: 1.0}, "met", label=f"{label} at the ULN is normal"),
        variant("I10", {name: 1.01}, "unknown", note=(note,), label=f"{label} 1.01 x ULN goes to review"),
        variant(
            "I10",
            {name: 1.99},
            "unknown",
            note=(note,),
            label=f"{label} 1.99 x ULN goes to review, {failure} not met",
        ),
        variant(failure, {name: 2.0}, "met", {"I10": "not_met"}, label=f"{label} at 2 x ULN is failure"),
        variant(failure, {name: 2.01}, "met", {"I10": "not_met"}, label=f"{label} 2.01 x ULN is failure"),
    ]


CASES = [
    # ---- thresholds, windows and the readings, one variant at a time (the whole evaluation is checked) ----
    # I1: age at the consent date, inclusive 18..80; Caucasian origin
    variant("I1", {"birth_date": "2008-10-01"}, "met", label="18th birthday on the consent day"),
    variant("I1", {"birth_date": "2008-10-02"}, "not_met", label="17 the day before the 18th birthday"),
    variant("I1", {"birth_date": "1945-10-02"}, "met", label="80 the day before the 81st birthday"),
    variant("I1", {"birth_date": "1945-10-01"}, "not_met", label="81st birthday on the consent day"),
    variant("I1", {"birth_date": "2008-10-15"}, "not_met", label="17 at consent though 18 at submission"),
    variant("I1", {"birth_date": None, "age_years": 17}, "not_met", label="age_years 17"),
    variant("I1", {"birth_date": None, "age_years": 18}, "met", label="age_years 18"),
    variant("I1", {"birth_date": None, "age_years": 80}, "met", label="age_years 80"),
    variant("I1", {"birth_date": None, "age_years": 81}, "not_met", label="age_years 81"),
    variant("I1", {"age_years": 99}, "met", label="birth_date wins over age_years"),
    variant("I1", {"race": "black"}, "not_met", label="a black applicant"),
    variant("I1", {"race": "asian"}, "not_met", label="an asian applicant"),
    variant("I1", {"race": "other"}, "not_met", label="race other"),
    variant(
        "I1",
        {"race": "unknown"},
        "unknown",
        note=("Caucasian origin",),
        label="race unknown goes to review",
    ),
    variant(
        "I1", {"race": "unknown", "birth_date": "1945-10-01"}, "not_met", label="race unknown but too old"
    ),
    variant("I1", {"sex": "male", "pregnant": None, "lactating": None}, "met", label="a man"),
    # I2: atherosclerotic or diabetic background
    variant("I2", {"atherosclerosis": False}, "met", label="diabetic without atherosclerosis"),
    variant("I2", {"diabetes": "none"}, "met", label="atherosclerotic without diabetes"),
    variant("I2", {"atherosclerosis": False, "diabetes": "none"}, "not_met", label="neither background"),
    variant(
        "I2",
        {"atherosclerosis": False, "diabetes": "type1"},
        "met",
        {"E15": "met"},
        label="type 1 diabetic meets I2 and E15",
    ),
    # I3: CLI, Fontaine 3-4 or Rutherford 4-6
    variant("I3", {"cli_diagnosed": False}, "not_met", label="CLI not diagnosed"),
    variant("I3", {"fontaine_stage": 3, "rutherford_grade": 3}, "met", label="Fontaine 3 at the threshold"),
    variant("I3", {"fontaine_stage": 2, "rutherford_grade": 3}, "not_met", label="Fontaine 2 below it"),
    variant("I3", {"fontaine_stage": 4, "rutherford_grade": 3}, "met", label="Fontaine 4 above it"),
    variant("I3", {"fontaine_stage": 2, "rutherford_grade": 4}, "met", label="Rutherford 4 at the threshold"),
    variant("I3", {"fontaine_stage": 1, "rutherford_grade": 3}, "not_met", label="Rutherford 3 below it"),
    variant("I3", {"fontaine_stage": 2, "rutherford_grade": 5}, "met", label="Rutherford 5 above it"),
    variant("I3", {"fontaine_stage": 2, "rutherford_grade": 6}, "met", label="Rutherford 6 at the top"),
    # I4: failed surgical (open or endovascular) treatment, conservative therapy going on
    variant("I4", {"revascularization": "surgical"}, "met", label="after failed open surgery"),
    variant("I4", {"revascularization": "none"}, "not_met", label="never revascularized"),
    variant(
        "I4",
        {"revascularization": "none", "revascularization_relieved_symptoms": None},
        "not_met",
        label="never revascularized needs no details",
    ),
    variant("I4", {"revascularization_relieved_symptoms": True}, "not_met", label="symptoms relieved"),
    variant("I4", {"conservative_therapy_ongoing": False}, "not_met", label="conservative therapy stopped"),
    # I5 and E14: emergency indication to a major amputation
    variant("I5", {"emergency_amputation_indicated": True}, "met", label="emergency minor amputation"),
    variant(
        "I5",
        {"emergency_amputation_indicated": True, "amputation_needed": "none"},
        "met",
        label="emergency with no amputation level",
    ),
    variant(
        "I5",
        {"emergency_amputation_indicated": True, "amputation_needed": "major"},
        "not_met",
        {"E14": "met"},
        label="emergency major amputation",
    ),
    variant("E14", {"amputation_needed": "major"}, "met", label="major amputation needed, not urgently"),
    variant("E14", {"amputation_needed": "none"}, "not_met", label="no amputation needed"),
    # I6
    variant(
        "I6",
        {"revascularization_outcome_questionable": False},
        "not_met",
        label="no questionable reconstruction planned",
    ),
    # I7: ABI <= 0.5 or ankle pressure <= 70 mmHg
    variant("I7", {"abi": 0.49}, "met", label="ABI 0.49"),
    variant("I7", {"abi": 0.5}, "met", label="ABI 0.5 at the threshold"),
    variant("I7", {"abi": 0.51}, "not_met", label="ABI 0.51 with ankle pressure 75"),
    variant("I7", {"abi": 0.6, "ankle_systolic_pressure_mmhg": 69.0}, "met", label="ankle pressure 69"),
    variant(
        "I7",
        {"abi": 0.6, "ankle_systolic_pressure_mmhg": 70.0},
        "met",
        label="ankle pressure 70 at the threshold",
    ),
    variant("I7", {"abi": 0.6, "ankle_systolic_pressure_mmhg": 71.0}, "not_met", label="ankle pressure 71"),
    variant("I7", {"abi": 0.51, "ankle_systolic_pressure_mmhg": 70.5}, "not_met", label="both just above"),
    # I8: type 2 diabetics treated with HbA1c <= 8.5 %
    variant("I8", {"hba1c_pct": 8.4}, "met", label="HbA1c 8.4"),
    variant("I8", {"hba1c_pct": 8.5}, "met", label="HbA1c 8.5 at the threshold"),
    variant("I8", {"hba1c_pct": 8.6}, "not_met", label="HbA1c 8.6"),
    variant("I8", {"diabetes_treated": False}, "not_met", label="untreated type 2 diabetes"),
    variant("I8", {"diabetes": "none", "hba1c_pct": 10.0}, "met", label="no diabetes, high HbA1c"),
    variant(
        "I8",
        {"diabetes": "none", "diabetes_treated": False, "hba1c_pct": None},
        "met",
        label="no diabetes needs no HbA1c",
    ),
    variant(
        "I8",
        {"diabetes": "type1", "hba1c_pct": 10.0},
        "met",
        {"E15": "met"},
        label="does not apply to type 1",
    ),
    # I9: hypertensives on medication if needed
    variant(
        "I9",
        {"hypertension": False, "hypertension_treated": False},
        "met",
        label="no hypertension, no medication",
    ),
    variant(
        "I9",
        {"hypertension": False, "hypertension_treated": None, "hypertension_uncontrolled": None},
        "met",
        label="no hypertension needs no details",
    ),
    variant(
        "I9",
        {"hypertension_treated": False},
        "unknown",
        note=("medication is needed",),
        label="untreated, controlled, goes to review",
    ),
    variant(
        "I9",
        {"hypertension_treated": False, "hypertension_uncontrolled": True},
        "not_met",
        label="untreated and uncontrolled",
    ),
    variant("I9", {"hypertension_uncontrolled": True}, "met", label="treated though uncontrolled"),
    # I10, E8, E9: multiples of the upper normal limit
    *lab_variants("creatinine_x_uln", "creatinine", "E8", "Serum creatinine"),
    *lab_variants("bilirubin_x_uln", "bilirubin", "E9", "Bilirubin"),
    *lab_variants("alt_x_uln", "ALT", "E9", "ALT"),
    *lab_variants("ast_x_uln", "AST", "E9", "AST"),
    # I11 and E22
    variant("I11", {"consent_signed": False}, "not_met", {"E22": "met"}, label="and E22 consent unsigned"),
    variant("I11", {"follow_up_agreed": False}, "not_met", label="follow-up not agreed"),
    # E1, E2: gangrene and limb infection
    variant("E1", {"gangrene": "wet"}, "met", label="wet gangrene"),
    variant("E1", {"limb_infection": "controlled"}, "met", label="controlled limb infection"),
    variant("E1", {"limb_infection": "uncontrolled"}, "met", label="uncontrolled limb infection"),
    variant("E1", {"limb_infection": "severe"}, "met", label="severe limb infection"),
    variant("E2", {"gangrene": "dry_extensive"}, "met", label="dry gangrene over half the foot"),
    variant("E2", {"gangrene": "none"}, "not_met", label="no gangrene"),
    # E3: acute arterial failure now
    variant("E3", {"acute_limb_ischemia_current": True}, "met", label="acute limb ischemia now"),
    variant(
        "E3",
        {"acute_limb_ischemia": False, "acute_limb_ischemia_current": None},
        "not_met",
        label="never had acute limb ischemia",
    ),
    # E4: life expectancy < 6 months
    variant("E4", {"life_expectancy_months": 5}, "met", label="5 months to live"),
    variant("E4", {"life_expectancy_months": 6}, "not_met", label="6 months to live"),
    variant("E4", {"life_expectancy_months": 7}, "not_met", label="7 months to live"),
    # E5 - E7
    variant("E5", {"malignancy_active": True}, "met", label="active malignancy"),
    variant("E5", {"bone_marrow_disease": True}, "met", label="bone marrow disease"),
    variant("E5", {"malignancy": False, "malignancy_active": None}, "not_met", label="never had cancer"),
    variant("E6", {"bleeding_active": True}, "met", label="bleeding"),
    variant("E7", {"systemic_infection": "controlled"}, "met", label="controlled infection"),
    variant("E7", {"systemic_infection": "uncontrolled"}, "met", label="uncontrolled infection"),
    # E10: platelets < 50 x10^9/L, WBC < 4 x10^9/L, immunosuppression
    variant("E10", {"platelets_10e9_l": 49.9}, "met", label="platelets 49.9"),
    variant("E10", {"platelets_10e9_l": 50.0}, "not_met", label="platelets 50 at the threshold"),
    variant("E10", {"platelets_10e9_l": 50.1}, "not_met", label="platelets 50.1"),
    variant("E10", {"wbc_10e9_l": 3.9}, "met", label="WBC 3.9"),
    variant("E10", {"wbc_10e9_l": 4.0}, "not_met", label="WBC 4 at the threshold"),
    variant("E10", {"wbc_10e9_l": 4.1}, "not_met", label="WBC 4.1"),
    variant("E10", {"immunosuppressive_therapy": True}, "met", label="immunosuppressive therapy"),
    # E11, E12, E15, E18
    variant("E11", {"neurological_deficit_pronounced": True}, "met", label="pronounced neurological deficit"),
    variant("E12", {"gait_disturbance_other_cause": True}, "met", label="gait disturbance of another cause"),
    variant("E15", {"diabetes": "type1"}, "met", label="type 1 diabetes"),
    variant("E18", {"angiography_contraindicated": True}, "met", label="angiography contraindicated"),
    # E16: respiratory complications or LVEF < 25 %
    variant("E16", {"lvef_pct": 24.9}, "met", label="LVEF 24.9"),
    variant("E16", {"lvef_pct": 25.0}, "not_met", label="LVEF 25 at the threshold"),
    variant("E16", {"lvef_pct": 25.1}, "not_met", label="LVEF 25.1"),
    variant("E16", {"severe_respiratory_disease": True}, "met", label="respiratory complications"),
    # E17: stroke or infarction within 3 calendar months (from 2026-07-01 on)
    variant("E17", {"stroke_date": "2026-07-01"}, "met", label="stroke on the first day of the window"),
    variant("E17", {"stroke_date": "2026-06-30"}, "not_met", label="stroke the day before the window"),
    variant(
        "E17",
        {"myocardial_infarction_date": "2026-07-01"},
        "met",
        label="infarction on the first day of the window",
    ),
    variant(
        "E17",
        {"myocardial_infarction_date": "2026-06-30"},
        "not_met",
        label="infarction the day before the window",
    ),
    variant(
        "E17",
        {"stroke": False, "stroke_date": "2026-09-01"},
        "not_met",
        label="no stroke, whatever the date",
    ),
    variant(
        "E17",
        {
            "stroke": False,
            "stroke_date": None,
            "myocardial_infarction": False,
            "myocardial_infarction_date": None,
        },
        "not_met",
        label="no stroke or infarction needs no dates",
    ),
    # E19: abuse within 3 months goes to review
    variant(
        "E19",
        {"substance_abuse_date": "2026-07-01"},
        "unknown",
        note=("severe",),
        label="abuse on the first day of the window",
    ),
    variant(
        "E19", {"substance_abuse_date": "2026-06-30"}, "not_met", label="abuse the day before the window"
    ),
    variant(
        "E19",
        {"substance_abuse": False, "substance_abuse_date": None},
        "not_met",
        label="no abuse needs no date",
    ),
    # E20: pregnant or lactating women
    variant("E20", {"pregnant": True}, "met", label="pregnant"),
    variant("E20", {"lactating": True}, "met", label="lactating"),
    variant(
        "E20",
        {"sex": "male", "pregnant": True},
        "not_met",
        label="a man with a pregnancy recorded by mistake",
    ),
    # E21: HIV, HCV, HBV by HBsAg or DNA
    variant("E21", {"hiv_positive": True}, "met", label="HIV positive"),
    variant("E21", {"hcv_antibody_positive": True}, "met", label="HCV antibody positive"),
    variant("E21", {"hbsag_positive": True}, "met", label="HBsAg positive"),
    variant("E21", {"hbv_dna_detectable": True}, "met", label="HBV DNA detectable"),
    # HBV DNA is a reflex test after a positive HBsAg: not done after a negative one, it is not missing
    only("E21", {"hbv_dna_detectable": None}, "not_met", label="HBsAg negative, no HBV DNA: HBV-negative"),
    only(
        "E21",
        {"hbsag_positive": None, "hbv_dna_detectable": None},
        "unknown",
        missing=("hbsag_positive",),
        label="no HBsAg: the routine test is what is missing",
    ),
    # windows and age count from the submission date without a consent date: 81 at submission, and the
    # stroke is more than 3 months before 2026-11-01
    variant(
        "E17",
        {"birth_date": "1945-10-15", "stroke_date": "2026-07-15"},
        "met",
        label="a stroke within 3 months of the consent date, at 80",
    ),
    variant(
        "I1",
        {"birth_date": "1945-10-15", "stroke_date": "2026-07-15", "consent_date": None},
        "not_met",
        label="81 at submission without a consent date, the stroke now outside the window",
    ),
    # the 3-month window from a May 31 consent starts on February 28
    only("E17", {"consent_date": "2026-05-31", "stroke_date": "2026-02-28"}, "met"),
    only("E17", {"consent_date": "2026-05-31", "stroke_date": "2026-02-27"}, "not_met"),
    # ---- deliberate unknowns: the protocol leaves the call to the physician, with a note ----
    variant(
        "I10",
        {"creatinine_x_uln": 1.5},
        "unknown",
        note=("Serum creatinine",),
        label="creatinine slightly high",
    ),
    variant("I10", {"bilirubin_x_uln": 1.5}, "unknown", note=("Bilirubin",), label="bilirubin slightly high"),
    variant("I10", {"alt_x_uln": 1.5}, "unknown", note=("ALT",), label="ALT slightly high"),
    variant("I10", {"ast_x_uln": 1.5}, "unknown", note=("AST",), label="AST slightly high"),
    variant("E19", {"substance_abuse_date": "2026-09-01"}, "unknown", note=("severe",), label="recent abuse"),
    variant(
        "I10",
        {"alt_x_uln": 1.2, "ast_x_uln": 1.4},
        "unknown",
        note=("ALT is above", "AST is above"),
        label="two slightly high liver values give both notes",
    ),
    only(
        "I10",
        {"creatinine_x_uln": 1.5, "bilirubin_x_uln": None},
        "unknown",
        missing=("bilirubin_x_uln",),
        note=("Serum creatinine",),
        label="a slightly high value with another missing lists the missing one and keeps the note",
    ),
    variant(
        "I10",
        {"creatinine_x_uln": 1.5, "ast_x_uln": 2.0},
        "not_met",
        {"E9": "met"},
        label="a value at twice the limit is not met even when another is slightly high",
    ),
    # ---- absent observations: (criterion, variable removed, outcome, overall decision, missing) ----
    without("I1", "birth_date", "unknown", "needs_review", ("age_years", "birth_date")),
    without("I2", "atherosclerosis", "met", "eligible"),  # diabetic background
    without("I2", "diabetes", "met", "needs_review"),  # atherosclerotic background; E15 is unknown
    without("I3", "fontaine_stage", "met", "eligible"),  # Rutherford 5 qualifies
    without("I3", "rutherford_grade", "met", "eligible"),  # Fontaine 4 qualifies
    without("I5", "emergency_amputation_indicated", "met", "eligible"),  # only a minor amputation needed
    without("I5", "amputation_needed", "met", "needs_review"),  # no emergency; E14 is unknown
    without("I7", "ankle_systolic_pressure_mmhg", "met", "eligible"),  # ABI 0.45 qualifies
    without("I8", "diabetes", "met", "needs_review"),  # treated and HbA1c 7.2 either way; E15 is unknown
    without("I9", "hypertension", "met", "eligible"),  # treated either way
    without("I9", "hypertension_uncontrolled", "met", "eligible"),  # treated
    without("E3", "acute_limb_ischemia", "not_met", "eligible"),  # not current either way
    without("E5", "malignancy", "not_met", "eligible"),  # not active either way
    without("E17", "stroke", "not_met", "eligible"),  # dated outside the window
    without("E17", "myocardial_infarction", "not_met", "eligible"),
    without("E19", "substance_abuse", "not_met", "eligible"),  # dated outside the window
    without("E20", "sex", "not_met", "eligible"),  # neither pregnant nor lactating
    *unknown_without("I1", "race"),
    *unknown_without("I3", "cli_diagnosed"),
    *unknown_without(
        "I4", "revascularization", "revascularization_relieved_symptoms", "conservative_therapy_ongoing"
    ),
    *unknown_without("I6", "revascularization_outcome_questionable"),
    *unknown_without("I7", "abi"),  # an ankle pressure of 75 does not qualify
    *unknown_without("I8", "diabetes_treated", "hba1c_pct"),
    *unknown_without("I9", "hypertension_treated"),
    *unknown_without("I10", "creatinine_x_uln", "bilirubin_x_uln", "alt_x_uln", "ast_x_uln"),
    *unknown_without("I11", "consent_signed", "follow_up_agreed"),
    *unknown_without("E1", "gangrene", "limb_infection"),
    *unknown_without("E2", "gangrene"),
    *unknown_without("E3", "acute_limb_ischemia_current"),
    *unknown_without("E4", "life_expectancy_months"),
    *unknown_without("E5", "malignancy_active", "bone_marrow_disease"),
    *unknown_without("E6", "bleeding_active"),
    *unknown_without("E7", "systemic_infection"),
    *unknown_without("E8", "creatinine_x_uln"),
    *unknown_without("E9", "bilirubin_x_uln", "alt_x_uln", "ast_x_uln"),
    *unknown_without("E10", "platelets_10e9_l", "wbc_10e9_l", "immunosuppressive_therapy"),
    *unknown_without("E11", "neurological_deficit_pronounced"),
    *unknown_without("E12", "gait_disturbance_other_cause"),
    *unknown_without("E14", "amputation_needed"),
    *unknown_without("E15", "diabetes"),
    *unknown_without("E16", "severe_respiratory_disease", "lvef_pct"),
    *unknown_without("E17", "stroke_date", "myocardial_infarction_date"),
    *unknown_without("E18", "angiography_contraindicated"),
    *unknown_without("E19", "substance_abuse_date"),
    *unknown_without("E20", "pregnant", "lactating"),
    *unknown_without("E21", "hiv_positive", "hcv_antibody_positive", "hbsag_positive"),
    *unknown_without("E22", "consent_signed"),
    # ---- where the baseline made a variable irrelevant, a changed applicant makes it matter again ----
    # (label, changes, removed, criterion, outcome); an unknown outcome lists exactly the removed variables
    kleene("too old, race absent", {"birth_date": "1945-10-01"}, ("race",), "I1", "not_met"),
    kleene(
        "no diabetes, atherosclerosis absent", {"diabetes": "none"}, ("atherosclerosis",), "I2", "unknown"
    ),
    kleene("no atherosclerosis, diabetes absent", {"atherosclerosis": False}, ("diabetes",), "I2", "unknown"),
    kleene("Rutherford 3, Fontaine absent", {"rutherford_grade": 3}, ("fontaine_stage",), "I3", "unknown"),
    kleene("Fontaine 2, Rutherford absent", {"fontaine_stage": 2}, ("rutherford_grade",), "I3", "unknown"),
    kleene(
        "CLI not diagnosed, stages absent",
        {"cli_diagnosed": False},
        ("fontaine_stage", "rutherford_grade"),
        "I3",
        "not_met",
    ),
    kleene(
        "never revascularized, the rest absent",
        {"revascularization": "none"},
        ("revascularization_relieved_symptoms", "conservative_therapy_ongoing"),
        "I4",
        "not_met",
    ),
    kleene(
        "major amputation, emergency absent",
        {"amputation_needed": "major"},
        ("emergency_amputation_indicated",),
        "I5",
        "unknown",
    ),
    kleene(
        "emergency, amputation level absent",
        {"emergency_amputation_indicated": True},
        ("amputation_needed",),
        "I5",
        "unknown",
    ),
    kleene(
        "ABI 0.6, ankle pressure absent", {"abi": 0.6}, ("ankle_systolic_pressure_mmhg",), "I7", "unknown"
    ),
    kleene("both absent", {}, ("abi", "ankle_systolic_pressure_mmhg"), "I7", "unknown"),
    kleene("HbA1c 9, diabetes absent", {"hba1c_pct": 9.0}, ("diabetes",), "I8", "unknown"),
    kleene(
        "no diabetes, treatment and HbA1c absent",
        {"diabetes": "none"},
        ("diabetes_treated", "hba1c_pct"),
        "I8",
        "met",
    ),
    kleene(
        "untreated and uncontrolled, hypertension absent",
        {"hypertension_treated": False, "hypertension_uncontrolled": True},
        ("hypertension",),
        "I9",
        "unknown",
    ),
    kleene(
        "untreated, control absent",
        {"hypertension_treated": False},
        ("hypertension_uncontrolled",),
        "I9",
        "unknown",
    ),
    kleene(
        "no hypertension, the rest absent",
        {"hypertension": False},
        ("hypertension_treated", "hypertension_uncontrolled"),
        "I9",
        "met",
    ),
    kleene("wet gangrene, infection absent", {"gangrene": "wet"}, ("limb_infection",), "E1", "met"),
    kleene(
        "acute ischemia now, history absent",
        {"acute_limb_ischemia_current": True},
        ("acute_limb_ischemia",),
        "E3",
        "unknown",
    ),
    kleene("active cancer, history absent", {"malignancy_active": True}, ("malignancy",), "E5", "unknown"),
    kleene("platelets 40, WBC absent", {"platelets_10e9_l": 40.0}, ("wbc_10e9_l",), "E10", "met"),
    kleene("recent stroke date, stroke absent", {"stroke_date": "2026-08-01"}, ("stroke",), "E17", "unknown"),
    kleene("no stroke, its date absent", {"stroke": False}, ("stroke_date",), "E17", "not_met"),
    kleene(
        "recent abuse date, abuse absent",
        {"substance_abuse_date": "2026-08-01"},
        ("substance_abuse",),
        "E19",
        "unknown",
    ),
    kleene("pregnant, sex absent", {"pregnant": True}, ("sex",), "E20", "unknown"),
    kleene(
        "a man, pregnancy and lactation absent",
        {"sex": "male"},
        ("pregnant", "lactating"),
        "E20",
        "not_met",
    ),
]

TRIAL = Trial(
    criteria_file="NCT03239535.criteria.yaml",
    registry_file="NCT03239535.json",
    criteria=(*[f"I{n}" for n in range(1, 12)], *[f"E{n}" for n in range(1, 23)]),
    judgments=("E13",),
    baseline=BASELINE,
    best_decision=("eligible", ()),
    cases=tuple(CASES),
    # a review, never an exclusion: abuse within the window goes to the physician
    never_met=("E19",),
    nothing_recorded_missing={
        "I7": ("abi", "ankle_systolic_pressure_mmhg"),
        "E21": ("hbsag_positive", "hcv_antibody_positive", "hiv_positive"),
    },
    registry={
        "trial_id": "NCT03239535",
        "org_study_id": "MSC-CLI/FMBA/001",
        "sponsor": "Federal Research Clinical Center of Federal Medical & Biological Agency, Russia",
        "phases": ["PHASE1", "PHASE2"],
        "overall_status": "UNKNOWN",
        "enrollment_target": 40,
        "enrollment_type": "ESTIMATED",
        "minimum_age": "18 Years",
        "maximum_age": "80 Years",
        "sex": "ALL",
        "conditions": ["Critical Limb Ischemia"],
        "sites": [
            (
                "Federal Research Clinical Center of Federal Medical & Biological Agency",
                "Moscow",
                "Russian Federation",
                "UNKNOWN",
            )
        ],
    },
)
