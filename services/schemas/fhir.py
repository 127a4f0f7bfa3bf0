"""FHIR R4B views: a trial as ResearchStudy, an application as ResearchSubject (fhir.resources).

The status mappings live here, once.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.researchstudy import ResearchStudy
from fhir.resources.R4B.researchsubject import ResearchSubject

from models import Application, Site, Trial

FHIR_JSON = "application/fhir+json"
CTGOV_SYSTEM = "https://clinicaltrials.gov"
PHASE_SYSTEM = "http://terminology.hl7.org/CodeSystem/research-study-phase"

# ClinicalTrials.gov overallStatus -> R4B ResearchStudy.status. R4B has no "unknown": an unverified
# record is shown as in review, and the registry's own status travels in a note.
STUDY_STATUS = {
    "NOT_YET_RECRUITING": "approved",
    "RECRUITING": "active",
    "ENROLLING_BY_INVITATION": "active",
    "ACTIVE_NOT_RECRUITING": "closed-to-accrual",
    "SUSPENDED": "temporarily-closed-to-accrual",
    "TERMINATED": "administratively-completed",
    "COMPLETED": "completed",
    "WITHDRAWN": "withdrawn",
    "UNKNOWN": "in-review",
}
# Application status -> R4B ResearchSubject.status.
SUBJECT_STATUS = {
    "submitted": "screening",
    "needs_review": "screening",
    "eligible": "eligible",
    "ineligible": "ineligible",
    "enrolled": "on-study",
    "withdrawn": "withdrawn",
}
PHASES = {
    ("NA",): "n-a",
    ("EARLY_PHASE1",): "early-phase-1",
    ("PHASE1",): "phase-1",
    ("PHASE1", "PHASE2"): "phase-1-phase-2",
    ("PHASE2",): "phase-2",
    ("PHASE2", "PHASE3"): "phase-2-phase-3",
    ("PHASE3",): "phase-3",
    ("PHASE4",): "phase-4",
}


def fhir_id(value: str) -> str:
    """FHIR ids allow letters, digits, '-' and '.' only."""
    return "".join(c if c.isalnum() or c in "-." else "-" for c in value)[:64]


def research_study(trial: Trial, sites: list[Site]) -> dict[str, Any]:
    identifiers: list[dict[str, Any]] = (
        [{"system": CTGOV_SYSTEM, "value": trial.nct_id}] if trial.nct_id else []
    )
    if trial.org_study_id:
        identifiers.append({"type": {"text": "sponsor protocol id"}, "value": trial.org_study_id})
    resource: dict[str, Any] = {
        "resourceType": "ResearchStudy",
        "id": fhir_id(trial.trial_id),
        "identifier": identifiers,
        "title": trial.title,
        "status": STUDY_STATUS[trial.overall_status],
        "condition": [{"text": c} for c in trial.conditions],
        "keyword": [{"text": k} for k in trial.keywords],
        "sponsor": {"display": trial.sponsor},
        "site": [{"display": ", ".join(p for p in (s.name, s.city, s.country) if p)} for s in sites],
        "note": [{"text": f"ClinicalTrials.gov overallStatus: {trial.overall_status}"}],
    }
    phase = PHASES.get(tuple(trial.phases))
    if phase:
        resource["phase"] = {"coding": [{"system": PHASE_SYSTEM, "code": phase}]}
    return ResearchStudy.model_validate(resource).model_dump(mode="json", exclude_none=True)


def research_subject(application: Application, assigned_arm: str | None = None) -> dict[str, Any]:
    """The application as a ResearchSubject; `assigned_arm` only for callers who may see the arm."""
    resource: dict[str, Any] = {
        "resourceType": "ResearchSubject",
        "id": fhir_id(application.id),
        "status": SUBJECT_STATUS[application.status],
        "period": {"start": application.submitted_at.isoformat()},
        "study": {"reference": f"ResearchStudy/{fhir_id(application.trial_id)}"},
        # Pseudonymous: the site's screening number, scoped to the site, never a patient record.
        "individual": {
            "identifier": {
                "system": f"urn:accrual:site:{application.site_id}:screening-id",
                "value": application.screening_id,
            }
        },
    }
    if assigned_arm is not None:
        resource["assignedArm"] = assigned_arm
    return ResearchSubject.model_validate(resource).model_dump(mode="json", exclude_none=True)
