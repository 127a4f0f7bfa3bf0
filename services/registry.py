"""ClinicalTrials.gov API v2 study records -> trial and site fields."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from models import TrialStatus

SITE_NAMESPACE = uuid.UUID("6f1c9a52-2d7e-4b8e-9a55-0c1f4f7d2a10")


class RegistryRecordError(ValueError):
    """A study record that lacks what a trial needs; `path` names the field in the record."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


@dataclass
class SiteFields:
    name: str
    city: str | None
    country: str | None
    status: str


@dataclass
class TrialFields:
    trial_id: str
    nct_id: str | None
    org_study_id: str | None
    title: str
    sponsor: str
    phases: list[str]
    conditions: list[str]
    keywords: list[str]
    overall_status: str
    enrollment_target: int | None
    enrollment_type: str | None
    minimum_age: str | None
    maximum_age: str | None
    sex: str
    sites: list[SiteFields] = field(default_factory=list)


def _module(protocol: dict[str, Any], name: str) -> dict[str, Any]:
    value = protocol.get(name) or {}
    if not isinstance(value, dict):
        raise RegistryRecordError(f"protocolSection.{name}", "must be an object")
    return value


def _required(value: Any, path: str) -> Any:
    if value in (None, "", []):
        raise RegistryRecordError(f"protocolSection.{path}", "is missing")
    return value


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistryRecordError(f"protocolSection.{path}", "must be an object")
    return value


def _strings(value: Any, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RegistryRecordError(f"protocolSection.{path}", "must be a list of strings")
    return value


def _text(value: Any, path: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise RegistryRecordError(f"protocolSection.{path}", "must be a string")
    return value


def _status(value: Any, path: str) -> str:
    if not isinstance(value, str) or value not in TrialStatus.__members__:
        raise RegistryRecordError(f"protocolSection.{path}", "is not one of " + ", ".join(TrialStatus))
    return str(value)


def _count(value: Any, path: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise RegistryRecordError(f"protocolSection.{path}", "must be a whole number >= 0")
    return value


def site_id_for(trial_id: str, facility: str) -> str:
    """A stable id for a registry location, so loading the same record twice makes no second site."""
    return "site_" + uuid.uuid5(SITE_NAMESPACE, f"{trial_id}|{facility}").hex[:20]


def trial_from_record(record: dict[str, Any]) -> TrialFields:
    """Map a v2 study record (protocolSection) onto the trial and its sites."""
    protocol = record.get("protocolSection") if isinstance(record, dict) else None
    if not isinstance(protocol, dict):
        raise RegistryRecordError("protocolSection", "is missing")
    ident = _module(protocol, "identificationModule")
    status = _module(protocol, "statusModule")
    sponsor = _module(protocol, "sponsorCollaboratorsModule")
    design = _module(protocol, "designModule")
    eligibility = _module(protocol, "eligibilityModule")
    locations = _module(protocol, "contactsLocationsModule").get("locations") or []
    if not isinstance(locations, list) or not all(isinstance(loc, dict) for loc in locations):
        raise RegistryRecordError(
            "protocolSection.contactsLocationsModule.locations", "must be a list of objects"
        )
    nct_id = _text(ident.get("nctId"), "identificationModule.nctId")
    org_study_id = _text(
        _object(ident.get("orgStudyIdInfo"), "identificationModule.orgStudyIdInfo").get("id"),
        "identificationModule.orgStudyIdInfo.id",
    )
    trial_id = str(
        _required(nct_id or org_study_id, "identificationModule.nctId or orgStudyIdInfo.id")
    ).upper()
    enrollment = _object(design.get("enrollmentInfo"), "designModule.enrollmentInfo")
    lead = _object(sponsor.get("leadSponsor"), "sponsorCollaboratorsModule.leadSponsor")
    conditions = _module(protocol, "conditionsModule")
    return TrialFields(
        trial_id=trial_id,
        nct_id=nct_id,
        org_study_id=org_study_id,
        title=_required(
            _text(ident.get("briefTitle") or ident.get("officialTitle"), "identificationModule.briefTitle"),
            "identificationModule.briefTitle",
        ),
        sponsor=_required(
            _text(lead.get("name"), "sponsorCollaboratorsModule.leadSponsor.name"),
            "sponsorCollaboratorsModule.leadSponsor.name",
        ),
        phases=_strings(design.get("phases"), "designModule.phases"),
        conditions=_strings(conditions.get("conditions"), "conditionsModule.conditions"),
        keywords=_strings(conditions.get("keywords"), "conditionsModule.keywords"),
        overall_status=_status(status.get("overallStatus"), "statusModule.overallStatus"),
        enrollment_target=_count(enrollment.get("count"), "designModule.enrollmentInfo.count"),
        enrollment_type=_text(enrollment.get("type"), "designModule.enrollmentInfo.type"),
        minimum_age=_text(eligibility.get("minimumAge"), "eligibilityModule.minimumAge"),
        maximum_age=_text(eligibility.get("maximumAge"), "eligibilityModule.maximumAge"),
        sex=_text(eligibility.get("sex"), "eligibilityModule.sex") or "ALL",
        sites=[
            SiteFields(
                name=_required(
                    _text(loc.get("facility"), f"contactsLocationsModule.locations.{i}.facility"),
                    f"contactsLocationsModule.locations.{i}.facility",
                ),
                city=_text(loc.get("city"), f"contactsLocationsModule.locations.{i}.city"),
                country=_text(loc.get("country"), f"contactsLocationsModule.locations.{i}.country"),
                status=_status(
                    loc.get("status") or status.get("overallStatus"),
                    f"contactsLocationsModule.locations.{i}.status",
                ),
            )
            for i, loc in enumerate(locations)
        ],
    )
