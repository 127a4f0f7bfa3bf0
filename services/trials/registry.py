"""ClinicalTrials.gov API v2 study records -> trial and site fields, validated before anything is stored."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from services.ids import slug
from services.schemas.api import IDENTIFIER_PATTERN, StudyRecord, TrialRegistryFields

SITE_NAMESPACE = uuid.UUID("6f1c9a52-2d7e-4b8e-9a55-0c1f4f7d2a10")
# Deeper than any real record (about six levels): refused before a recursive encoder meets it.
MAX_DEPTH = 32
# Free text (descriptions, eligibility text) keeps tabs and line breaks; other control characters,
# NUL above all, and lone surrogates cannot be stored in a JSON column (PostgreSQL refuses them).
NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
IDENTIFIER = re.compile(IDENTIFIER_PATTERN)

RecordPath = tuple[str | int, ...]


class RegistryRecordError(ValueError):
    """A study record that cannot become a trial; `errors` names each bad field by its path in the record."""

    def __init__(self, errors: Sequence[tuple[RecordPath, str]]) -> None:
        self.errors = list(errors)
        super().__init__(
            "; ".join(f"{'.'.join(map(str, path)) or 'record'}: {detail}" for path, detail in errors)
        )

    @classmethod
    def at(cls, path: RecordPath, detail: str) -> RegistryRecordError:
        """One bad field."""
        return cls([(path, detail)])


@dataclass
class SiteFields:
    name: str
    city: str | None
    country: str | None
    status: str


class TrialFields(TrialRegistryFields):
    """What a study record makes of a trial: its registry fields and its sites."""

    sites: list[SiteFields] = Field(default_factory=list)


def site_id_for(trial_id: str, facility: str) -> str:
    """A stable id for a registry location, so loading the same record twice makes no second site."""
    return "site_" + uuid.uuid5(SITE_NAMESPACE, f"{trial_id}|{facility}").hex[:20]


def check_values(record: Any) -> None:
    """Refuse, anywhere in the record (kept whole as the trial's registry_record), what a JSON column
    cannot store faithfully: NaN and infinities, control characters, lone surrogates, deep nesting."""
    pending: list[tuple[RecordPath, Any]] = [((), record)]
    while pending:  # iterative: a deep record must not exhaust the interpreter's stack
        path, value = pending.pop()
        if len(path) > MAX_DEPTH:
            raise RegistryRecordError.at(path[:MAX_DEPTH], f"nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, float) and not math.isfinite(value):
            raise RegistryRecordError.at(path, "must be a finite number, not NaN or Infinity")
        if isinstance(value, str) and NOT_TEXT.search(value):
            raise RegistryRecordError.at(path, "must not contain control characters")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str) or NOT_TEXT.search(key):
                    raise RegistryRecordError.at(path, "has a key with control characters")
                pending.append(((*path, key), item))
        elif isinstance(value, list):
            pending.extend(((*path, index), item) for index, item in enumerate(value))


def parse_record(record: Any) -> StudyRecord:
    """The record validated: every value storable, and the fields Accrual reads of the right type and size."""
    check_values(record)
    try:
        return StudyRecord.model_validate(record)
    except ValidationError as exc:
        raise RegistryRecordError(
            [
                (tuple(error["loc"]), str(error["msg"]).removeprefix("Value error, "))
                for error in exc.errors(include_url=False, include_input=False)
            ]
        ) from None


IDENTIFICATION = ("protocolSection", "identificationModule")


def _trial_id(study: StudyRecord) -> str:
    """The NCT number, else the sponsor's protocol id, which must then be a valid trial id too."""
    ident = study.protocolSection.identificationModule
    if ident.nctId is not None:
        return ident.nctId.upper()
    org_id = ident.orgStudyIdInfo.id if ident.orgStudyIdInfo is not None else None
    if org_id is None:
        raise RegistryRecordError.at(
            (*IDENTIFICATION, "nctId"), "is missing, and so is orgStudyIdInfo.id: a trial needs one of them"
        )
    if not IDENTIFIER.fullmatch(org_id):
        raise RegistryRecordError.at(
            (*IDENTIFICATION, "orgStudyIdInfo", "id"),
            "is the trial's id when there is no nctId: only letters, digits, '.', '_' and '-'",
        )
    return org_id.upper()


def _required(value: str | None, path: RecordPath) -> str:
    if value is None:
        raise RegistryRecordError.at(path, "is missing")
    return value


def _sites(study: StudyRecord) -> list[SiteFields]:
    overall = study.protocolSection.statusModule.overallStatus
    return [
        SiteFields(name=loc.facility, city=loc.city, country=loc.country, status=loc.status or overall)
        for loc in study.protocolSection.contactsLocationsModule.locations or []
    ]


def trial_from_record(record: Any) -> TrialFields:
    """Validate a v2 study record (protocolSection) and map it onto the trial and its sites."""
    study = parse_record(record)
    protocol = study.protocolSection
    ident, design = protocol.identificationModule, protocol.designModule
    lead = protocol.sponsorCollaboratorsModule.leadSponsor
    enrollment = design.enrollmentInfo
    eligibility = protocol.eligibilityModule
    return TrialFields(
        trial_id=_trial_id(study),
        nct_id=ident.nctId,
        org_study_id=ident.orgStudyIdInfo.id if ident.orgStudyIdInfo is not None else None,
        title=_required(ident.briefTitle or ident.officialTitle, (*IDENTIFICATION, "briefTitle")),
        sponsor=_required(
            lead.name if lead is not None else None,
            ("protocolSection", "sponsorCollaboratorsModule", "leadSponsor", "name"),
        ),
        phases=design.phases or [],
        conditions=protocol.conditionsModule.conditions or [],
        keywords=protocol.conditionsModule.keywords or [],
        overall_status=protocol.statusModule.overallStatus,
        enrollment_target=enrollment.count if enrollment is not None else None,
        enrollment_type=enrollment.type if enrollment is not None else None,
        minimum_age=eligibility.minimumAge,
        maximum_age=eligibility.maximumAge,
        sex=eligibility.sex or "ALL",
        sites=_sites(study),
    )


ARM_ID_LENGTH = 40


@dataclass(frozen=True)
class RegistryArm:
    arm_id: str
    label: str


def arm_id_for(label: str) -> str:
    """An arm's id from its registry label ("Mesenchymal stem cells" -> `mesenchymal-stem-cells`)."""
    return slug(label, ARM_ID_LENGTH) or "arm"


def registry_arms(record: Any) -> list[RegistryArm]:
    """The arms a study record describes: its armGroups by label or, when it lists none (as
    NCT06359912 does), one arm per intervention, by name (armsInterventionsModule)."""
    module = (record.get("protocolSection") or {}).get("armsInterventionsModule") or {}
    labels = [group.get("label") for group in module.get("armGroups") or []]
    if not any(labels):
        labels = [intervention.get("name") for intervention in module.get("interventions") or []]
    arms: dict[str, RegistryArm] = {}
    for label in labels:
        if isinstance(label, str) and label.strip():
            arm = RegistryArm(arm_id_for(label), label.strip())
            arms.setdefault(arm.arm_id, arm)
    return list(arms.values())
