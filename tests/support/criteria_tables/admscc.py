"""ADMSCC-CLI-P1-2A's table of cases (services/trials/seed_data/ADMSCC-CLI-P1-2A.criteria.yaml).

Only the abstract is public, so no applicant can be eligible: the best outcome is needs_review on I2, and
the unpublished rest is one judgment placeholder per kind (I3, E1). Data only:
tests/unit/test_trial_criteria.py runs it.
"""

from __future__ import annotations

from tests.support.criteria_cases import CONSENT, Trial, variant, without

# A 66-year-old man with CLI: as far as the public record goes, the best possible applicant.
BASELINE = {"consent_date": CONSENT, "birth_date": "1960-05-02", "sex": "male", "cli_diagnosed": True}

CASES = [
    # an applicant without CLI is ineligible on both inclusion rules, and I2 then needs no note
    variant("I2", {"cli_diagnosed": False}, "not_met", {"I1": "not_met"}),
    # removing cli_diagnosed makes both inclusion rules unknown, listing it
    without("I1", "cli_diagnosed", "unknown", "needs_review", ("cli_diagnosed",), ("I1", "I2")),
    without("I2", "cli_diagnosed", "unknown", "needs_review", ("cli_diagnosed",), ("I1", "I2")),
    # the abstract states no age limit, so age decides nothing
    variant("I1", {"birth_date": "2008-10-02"}, "met"),
]

TRIAL = Trial(
    criteria_file="ADMSCC-CLI-P1-2A.criteria.yaml",
    registry_file="ADMSCC-CLI-P1-2A.json",
    criteria=("I1", "I2", "I3", "E1"),
    judgments=("I3", "E1"),
    baseline=BASELINE,
    best_decision=("needs_review", ("I2",)),
    cases=tuple(CASES),
    baseline_reviews={"I2": ("not eligible for standard revascularization",)},
    # a review on the very data that meets it: no applicant meets I2
    never_met=("I2",),
    reads_age=False,  # the abstract states no age limit
    nothing_recorded_missing={"I1": ("cli_diagnosed",)},
    registry={
        "trial_id": "ADMSCC-CLI-P1-2A",
        "nct_id": None,
        "org_study_id": "ADMSCC-CLI-P1-2A",
        "sponsor": "Investigators of doi:10.15283/ijsc25002",
        "overall_status": "COMPLETED",
        "phases": ["PHASE1", "PHASE2"],
        "enrollment_target": 20,
        "enrollment_type": "ACTUAL",
        "minimum_age": None,
        "maximum_age": None,
        "sites": [("Study site, Republic of Korea", None, "South Korea", "COMPLETED")],
    },
)
