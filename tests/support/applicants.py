"""Example applicants, shared by the tests and the benchmarks."""

from __future__ import annotations

from typing import Any


def eligible_applicant(screening_id: str = "S-001", **changes: Any) -> dict[str, Any]:
    """An applicant for NCT06359912 with every observation its criteria read, eligible on all of them."""
    applicant: dict[str, Any] = {
        "screening_id": screening_id,
        "birth_date": "1955-07-01",
        "sex": "female",
        "consent_date": "2026-10-01",
        "consent_signed": True,
        "follow_up_agreed": True,
        "cli_diagnosed": True,
        "revascularization": "none",
        "rutherford_grade": 4,
        "rest_pain": True,
        "rest_pain_onset_date": "2026-08-01",
        "severe_claudication": False,
        "abi": 0.5,
        "infrainguinal_stenosis_pct": 90,
        "infrainguinal_imaging": "dsa",
        "infrainguinal_imaging_date": "2026-09-20",
        "wagner_grade": 1,
        "childbearing_potential": False,
        "prior_cell_therapy": False,
        "other_trial": False,
        "iliac_stenosis_pct": 20,
        "limb_infection": "none",
        "systemic_infection": "none",
        "diabetes": "none",
        "acute_limb_ischemia": False,
        "hypertension": False,
        "stroke": False,
        "heart_failure": False,
        "unstable_angina": False,
        "myocardial_infarction": False,
        "severe_arrhythmia": False,
        "liver_disease": "none",
        "kidney_disease_severe": False,
        "coagulation_disorder_severe": False,
        "anemia_severe": False,
        "severe_respiratory_disease": False,
        "hbsag_positive": False,
        "hcv_antibody_positive": False,
        "syphilis_positive": False,
        "hiv_positive": False,
        "malignancy": False,
        "mental_illness": False,
        "cognitive_impairment": False,
        "life_expectancy_months": 60,
        "immunodeficiency": False,
        "pregnant": False,
        "lactating": False,
        "drug_allergy_count": 0,
        "substance_abuse": False,
        "hemoglobin_g_l": {"value": 12.1, "unit": "g/dL"},
    }
    applicant.update(changes)
    return applicant
