"""The applicant observation vocabulary of docs/observations.md, as one table.

The table is the single source for both the pydantic model that validates what coordinators send
and the variable types the eligibility compiler checks rules against.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from services.eligibility import VariableSpec

# unit (matched ignoring case, "µ" read as "u") -> (factor, offset): canonical = value * factor + offset
HB_UNITS = {"g/L": (1.0, 0.0), "g/dL": (10.0, 0.0), "mmol/L": (16.1145, 0.0)}
COUNT_UNITS = {
    "10^9/L": (1.0, 0.0), "10*9/L": (1.0, 0.0), "10e9/L": (1.0, 0.0),
    "10^3/uL": (1.0, 0.0), "10*3/uL": (1.0, 0.0), "K/uL": (1.0, 0.0),
    "/uL": (0.001, 0.0), "/mm3": (0.001, 0.0), "cells/uL": (0.001, 0.0),
}  # fmt: skip
# NGSP % = 0.09148 x IFCC mmol/mol + 2.152 (the IFCC-NGSP master equation)
HBA1C_UNITS = {"%": (1.0, 0.0), "mmol/mol": (0.09148, 2.152)}

PERCENT = {"%": (1.0, 0.0)}  # sent as {"value": 0.9, "unit": "%"}, a percentage at or below 1 is meant

# A number's canonical unit is part of its name (observations.md: never change it), so the suffix is the
# source; a lab value's conversions must agree with it (tests/unit/test_docs.py checks that).
UNIT_SUFFIXES = (
    ("_mmhg", "mmHg"),
    ("_pct", "%"),
    ("_cm2", "cm²"),
    ("_g_l", "g/L"),
    ("_10e9_l", "10^9/L"),
    ("_x_uln", "x ULN"),
    ("_units_per_week", "units/week"),
    ("_years", "years"),
    ("_months", "months"),
)


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str  # bool | int | float | date | enum
    low: float | None = None
    high: float | None = None
    values: tuple[str, ...] = ()
    units: dict[str, tuple[float, float]] = field(default_factory=dict)
    doc: str = ""

    @property
    def spec(self) -> VariableSpec:
        return VariableSpec(self.kind, self.values)


def _b(name: str, doc: str = "") -> Variable:
    return Variable(name, "bool", doc=doc)


def _d(name: str, doc: str = "") -> Variable:
    return Variable(name, "date", doc=doc)


def _i(name: str, low: int, high: int, doc: str = "") -> Variable:
    return Variable(name, "int", low, high, doc=doc)


def _f(
    name: str, low: float, high: float, doc: str = "", units: dict[str, tuple[float, float]] | None = None
) -> Variable:
    return Variable(name, "float", low, high, units=units or {}, doc=doc)


def _e(name: str, *values: str, doc: str = "") -> Variable:
    return Variable(name, "enum", values=values, doc=doc)


VOCABULARY: tuple[Variable, ...] = (
    # identity (screening_id is validated separately: it is not a clinical observation)
    _d("birth_date", "one of birth_date / age_years is required; birth_date wins"),
    _i("age_years", 0, 120),
    _e("sex", "female", "male", doc="required"),
    _e("race", "white", "black", "asian", "american_indian_or_alaska_native",
       "native_hawaiian_or_pacific_islander", "other", "unknown"),
    # limb, perfusion and imaging
    _b("cli_diagnosed", "critical limb ischemia diagnosed"),
    _b("atherosclerosis", "PAD on an atherosclerotic background"),
    _i("rutherford_grade", 0, 6),
    _i("fontaine_stage", 1, 4, "IIa and IIb are 2"),
    _f("abi", 0, 3, "ankle-brachial index"),
    _f("ankle_systolic_pressure_mmhg", 0, 300, "mmHg"),
    _f("tcpo2_mmhg", 0, 100, "transcutaneous oxygen, mmHg"),
    _b("rest_pain"),
    _d("rest_pain_onset_date"),
    _b("severe_claudication", "severe intermittent claudication"),
    _f("infrainguinal_stenosis_pct", 0, 100, "worst infrainguinal stenosis; 100 = occlusion", PERCENT),
    _e("infrainguinal_imaging", "dsa", "cta", "mra", "ultrasound"),
    _d("infrainguinal_imaging_date"),
    _f("iliac_stenosis_pct", 0, 100, "main iliac artery", PERCENT),
    _e("revascularization", "none", "surgical", "endovascular", doc="most recent prior revascularization"),
    _d("revascularization_date"),
    _b("revascularization_relieved_symptoms"),
    _b("sympathectomy_or_amputation", "lumbar sympathectomy or any amputation, ever"),
    _d("sympathectomy_or_amputation_date"),
    _b("revascularization_outcome_questionable"),
    _b("conservative_therapy_ongoing"),
    _b("acute_limb_ischemia", "any episode of acute limb ischemia, ever"),
    _d("acute_limb_ischemia_date"),
    _b("acute_limb_ischemia_current"),
    _e("amputation_needed", "none", "minor", "major"),
    _b("emergency_amputation_indicated"),
    _b("angiography_contraindicated"),
    # wounds and infection
    _i("wagner_grade", 0, 5),
    _i("ulcer_count", 0, 50),
    _f("ulcer_largest_area_cm2", 0, 500, "cm²"),
    _d("ulcer_onset_date"),
    _b("ulcer_exposes_bone_or_joint"),
    _e("gangrene", "none", "dry_toe", "dry_extensive", "wet"),
    _e("limb_infection", "none", "controlled", "uncontrolled", "severe"),
    _e("systemic_infection", "none", "controlled", "uncontrolled"),
    # metabolic, cardiovascular, respiratory
    _e("diabetes", "none", "type1", "type2"),
    _b("diabetes_treated"),
    _f("hba1c_pct", 3, 20, "%; accepts mmol/mol", HBA1C_UNITS),
    _i("diabetic_retinopathy_grade", 0, 4, "4 = proliferative"),
    _b("retinopathy_exam_available"),
    _b("hypertension"),
    _b("hypertension_treated"),
    _b("hypertension_uncontrolled"),
    _f("systolic_bp_mmhg", 50, 300),
    _f("diastolic_bp_mmhg", 20, 200),
    _i("antihypertensive_drug_count", 0, 10),
    _b("stroke", "cerebral infarction or haemorrhage"),
    _d("stroke_date"),
    _b("myocardial_infarction"),
    _d("myocardial_infarction_date"),
    _b("unstable_angina"),
    _d("unstable_angina_date"),
    _b("heart_failure"),
    _i("nyha_class", 1, 4),
    _f("lvef_pct", 5, 90, "", PERCENT),
    _b("severe_arrhythmia"),
    _b("severe_respiratory_disease"),
    # laboratory
    _f("hemoglobin_g_l", 20, 250, "g/L; accepts g/dL, mmol/L", HB_UNITS),
    _f("wbc_10e9_l", 0, 500, "10^9/L; accepts /uL, 10^3/uL", COUNT_UNITS),
    _f("platelets_10e9_l", 0, 3000, "10^9/L; accepts /uL, 10^3/uL", COUNT_UNITS),
    _f("creatinine_x_uln", 0, 100, "multiple of the upper limit of normal"),
    _f("alt_x_uln", 0, 100, "multiple of the upper limit of normal"),
    _f("ast_x_uln", 0, 100, "multiple of the upper limit of normal"),
    _f("bilirubin_x_uln", 0, 100, "multiple of the upper limit of normal"),
    _b("coagulation_disorder_severe"),
    _b("anemia_severe"),
    _e("liver_disease", "none", "mild", "severe", "decompensated"),
    _b("kidney_disease_severe"),
    _b("bleeding_active", "active or chronic (also latent) haemorrhage"),
    # serology
    _b("hiv_positive"),
    _b("hbsag_positive"),
    _b("hbv_dna_detectable"),
    _b("hcv_antibody_positive"),
    _b("syphilis_positive"),
    # oncology and immunity
    _b("malignancy", "ever, other than cured basal-cell, cervical in situ or papillary thyroid"),
    _d("malignancy_date"),
    _b("malignancy_active"),
    _b("bone_marrow_disease"),
    _b("tumor_screen_abnormal"),
    _b("immunodeficiency", "congenital or acquired"),
    _b("immunosuppressive_therapy", "current"),
    _b("chemoradiotherapy_current"),
    # history, consent and other
    _b("prior_cell_therapy"),
    _b("other_trial", "ever took part in another interventional study"),
    _d("other_trial_date"),
    _i("drug_allergy_count", 0, 100),
    _b("substance_abuse", "alcohol or drug abuse, current or recent"),
    _d("substance_abuse_date"),
    _f("alcohol_units_per_week", 0, 500),
    _b("mental_illness", "excluding cured depression"),
    _b("cognitive_impairment"),
    _b("neurological_deficit_pronounced"),
    _b("gait_disturbance_other_cause"),
    _b("can_describe_symptoms"),
    _i("life_expectancy_months", 0, 1200, "investigator's estimate"),
    _b("pregnant"),
    _b("lactating"),
    _b("childbearing_potential"),
    _b("contraception_agreed"),
    _b("pregnancy_test_negative"),
    _b("consent_signed"),
    _d("consent_date", "reference date for windows and age"),
    _b("follow_up_agreed"),
    _f("diary_compliance_pct", 0, 100, "", PERCENT),
)  # fmt: skip


def suffix_unit(name: str) -> str:
    """The canonical unit a variable's name announces by its suffix, or "" for a unitless one."""
    return next((unit for suffix, unit in UNIT_SUFFIXES if name.endswith(suffix)), "")


def canonical_unit(variable: Variable) -> str:
    """The unit a number is stored in: the identity conversion of a lab value, else its name's suffix."""
    identity = [unit for unit, factors in variable.units.items() if factors == (1.0, 0.0)]
    return identity[0] if identity else suffix_unit(variable.name)


def closest_names(name: str, limit: int = 3) -> list[str]:
    """Vocabulary names a mistyped or unknown field name most likely meant: the same name in another
    case (`ABI`), a name it begins (`hemoglobin` for `hemoglobin_g_l`), then the closest spellings."""
    wanted = name.strip().lower()
    names = [variable.name for variable in VOCABULARY]
    if wanted in names:
        return [wanted]
    starting = [known for known in names if wanted and known.startswith(wanted)]
    close = difflib.get_close_matches(wanted, names, n=limit, cutoff=0.75)
    return list(dict.fromkeys([*starting, *close]))[:limit]


VARIABLES: dict[str, VariableSpec] = {v.name: v.spec for v in VOCABULARY}
