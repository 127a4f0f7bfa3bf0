"""Request and response models of the HTTP API; they generate the OpenAPI document."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.schemas.events import EventOut, EventTypeName
from services.schemas.observations import (
    Applicant,
    ApplicantBase,
    ChangesBase,
    ObservationChanges,
    Observations,
    ObservationsBase,
    ScreeningId,
)

# Server-made and registry ids alike: letters, digits, dot, dash and underscore only.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9._-]+$"
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENTIFIER_PATTERN)]

ApplicationStatusName = Literal[
    "submitted", "eligible", "ineligible", "needs_review", "enrolled", "withdrawn"
]
TrialStatusName = Literal[
    "NOT_YET_RECRUITING", "RECRUITING", "ENROLLING_BY_INVITATION", "ACTIVE_NOT_RECRUITING",
    "SUSPENDED", "TERMINATED", "COMPLETED", "WITHDRAWN", "UNKNOWN",
]  # fmt: skip


class SubmitApplication(BaseModel):
    """A coordinator's submission of one applicant to one trial at one site."""

    model_config = ConfigDict(extra="forbid")

    trial_id: Identifier = Field(description="NCT number or sponsor protocol id")
    site_id: Identifier
    if TYPE_CHECKING:
        applicant: ApplicantBase
    else:
        applicant: Applicant


class CriterionOut(BaseModel):
    id: str
    kind: Literal["inclusion", "exclusion"]
    text: str
    outcome: Literal["met", "not_met", "unknown", "judgment"] = Field(
        description="met, not_met, unknown (data missing: see `missing`), or judgment: no rule can "
        "decide this criterion, only the investigator"
    )
    missing: list[str] = Field(description="Observations whose absence left the criterion unknown")
    note: str | None = Field(default=None, description="For the reviewer, when a rule asks for review")
    reading: str | None = Field(
        default=None, description="How the protocol text was encoded, where it needed reading"
    )


class ReasonOut(BaseModel):
    """A criterion that decided, and its effect in plain terms."""

    criterion_id: str
    kind: Literal["inclusion", "exclusion"]
    effect: Literal["excludes", "not_met", "unknown", "judgment"] = Field(
        description="excludes: an exclusion criterion is met; not_met: an inclusion criterion is not met; "
        "unknown: data is missing (see `missing`); judgment: the investigator's call"
    )
    text: str
    reading: str | None
    missing: list[str]


class HistoryOut(BaseModel):
    status: ApplicationStatusName
    at: datetime
    by: str
    reason: str | None = None


class AllocationOut(BaseModel):
    """A randomised participant's allocation, made in the enrolment transaction."""

    sequence: int = Field(description="The randomisation number: unique in the trial, none skipped")
    stratum: str = Field(
        description="`site=S1;diabetes=type2` (minimisation: the factor levels), `all` without strata"
    )
    arm_id: str | None = Field(
        default=None,
        description="The arm: only for admins and tokens created --unblinded, and for everyone who sees the "
        "application once it was unblinded in an emergency; null (concealed) otherwise",
    )
    allocated_at: datetime
    unblinded_at: datetime | None = Field(
        default=None, description="When an emergency code-break revealed the arm"
    )


class ApplicationOut(BaseModel):
    id: str
    trial_id: str
    site_id: str
    screening_id: str
    status: ApplicationStatusName
    decision: Literal["eligible", "ineligible", "needs_review"] | None
    criteria: list[CriterionOut]
    reasons: list[ReasonOut] = Field(
        default_factory=list,
        description="The criteria that decided (every excluding one; else every unknown one and every "
        "criterion left to the investigator's judgment); empty before a decision",
    )
    eligible_from: date | None = Field(
        default=None,
        description="For an ineligible applicant whom only time windows exclude (an event too recent, a "
        "symptom too short): the earliest consent date from which every excluding criterion passes; "
        "re-consent then and PATCH consent_date to screen again",
    )
    renew: list[str] = Field(
        default_factory=list,
        description="Dated observations that were too old at consent and must be repeated",
    )
    criteria_version: int | None
    submitted_at: datetime
    decided_at: datetime | None
    history: list[HistoryOut]
    allocation: AllocationOut | None = Field(
        default=None, description="For a participant of a randomised trial: the allocation made at enrolment"
    )
    observations: dict[str, Any] | None = Field(
        default=None, description="The observations as stored, in canonical units (single-application reads)"
    )


class ApplicationPage(BaseModel):
    items: list[ApplicationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class ApplicationPath(BaseModel):
    application_id: Identifier


class ApplicationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trial_id: Identifier | None = None
    site_id: Identifier | None = None
    status: ApplicationStatusName | None = None
    screening_id: ScreeningId | None = Field(
        default=None, description="exact match, within the caller's sites"
    )
    cursor: str | None = Field(default=None, max_length=1000)
    limit: int = Field(default=50, ge=1, le=200)


class TrialPath(BaseModel):
    trial_id: Identifier


class TrialRegistryFields(BaseModel):
    """A trial as its registry record describes it: the columns of `trials` a registry import writes
    (services.trials.registry) and the first fields of every trial answer (TrialOut), named once."""

    trial_id: str
    nct_id: str | None
    org_study_id: str | None
    title: str
    sponsor: str
    phases: list[str]
    conditions: list[str]
    keywords: list[str]
    overall_status: TrialStatusName
    enrollment_target: int | None
    enrollment_type: str | None
    minimum_age: str | None
    maximum_age: str | None
    sex: str


class TrialOut(TrialRegistryFields):
    applied_count: int
    enrolled_count: int
    criteria_version: int | None


class TrialList(BaseModel):
    items: list[TrialOut]


class SiteOut(BaseModel):
    site_id: str
    trial_id: str
    name: str
    city: str | None
    country: str | None
    status: TrialStatusName
    enrollment_target: int | None
    applied_count: int | None
    enrolled_count: int | None
    suppressed: list[str] = Field(
        default_factory=list,
        description="The count fields of this entry withheld (null) by small-cell suppression",
    )


class SiteList(BaseModel):
    items: list[SiteOut]


class CriterionSpecOut(BaseModel):
    id: str
    kind: Literal["inclusion", "exclusion"]
    text: str
    judgment: bool
    rule: dict[str, Any] | None
    reading: str | None


class CriteriaOut(BaseModel):
    trial_id: str
    version: int
    created_at: datetime
    criteria: list[CriterionSpecOut]


class FieldError(BaseModel):
    field: str
    pointer: str
    detail: str


class ProblemOut(BaseModel):
    """RFC 9457 problem details (application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class MissingOut(BaseModel):
    variable: str
    settles_criteria: list[str] = Field(description="Criteria that become known whatever its value")
    settles_decision: bool = Field(
        description="Whether knowing it, whatever its value, decides the application"
    )


class WorkItemOut(BaseModel):
    application_id: str
    trial_id: str
    site_id: str
    screening_id: str
    submitted_at: datetime
    places_left: int | None = Field(description="Places left at the site or in the trial, whichever is fewer")
    missing: list[MissingOut] = Field(
        description="The observations that would settle it, most valuable first"
    )


class Worklist(BaseModel):
    """The needs_review applications a coordinator can settle, most valuable first."""

    items: list[WorkItemOut]


class WorklistQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trial_id: Identifier | None = None
    site_id: Identifier | None = None


class VariableOut(BaseModel):
    """One variable of the applicant vocabulary."""

    name: str
    type: str = Field(description="bool, int, float, date, enum, or string (the screening id)")
    unit: str = Field(description="the canonical unit numbers are stored in; empty for unitless ones")
    units_accepted: list[str] = Field(description='units a value may be sent in as {"value", "unit"}')
    minimum: float | None
    maximum: float | None
    values: list[str] = Field(description="the allowed values of an enum")
    description: str


class VocabularyOut(BaseModel):
    """Every variable an applicant may carry, in the vocabulary's order; docs/observations.md in full."""

    variables: list[VariableOut]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)


class CorrectApplication(BaseModel):
    """Observations to add or correct (null removes one), after which the application is screened
    again; and/or a mistyped screening id corrected (not screened again)."""

    model_config = ConfigDict(extra="forbid")

    if TYPE_CHECKING:
        applicant: ChangesBase | None = None
    else:
        applicant: ObservationChanges | None = None
    screening_id: ScreeningId | None = Field(
        default=None,
        description="the corrected screening id; 409 if another application of the trial and site has it",
    )

    @model_validator(mode="after")
    def _something_to_correct(self) -> CorrectApplication:
        if self.applicant is None and self.screening_id is None:
            raise ValueError("send applicant (observations to correct), screening_id, or both")
        return self


class PrescreenRequest(BaseModel):
    """One applicant's observations (no screening id: nothing is stored) and optionally the trials to try."""

    model_config = ConfigDict(extra="forbid")

    if TYPE_CHECKING:
        applicant: ObservationsBase
    else:
        applicant: Observations
    trial_ids: list[Identifier] | None = Field(default=None, max_length=50)


class PrescreenResult(BaseModel):
    trial_id: str
    title: str
    overall_status: TrialStatusName
    decision: Literal["eligible", "ineligible", "needs_review"]
    criteria_version: int
    deciding: list[str] = Field(description="Criteria that excluded, or that are unknown for needs_review")
    missing: list[str] = Field(description="Observations whose absence left criteria unknown")
    criteria: list[CriterionOut]
    reasons: list[ReasonOut] = Field(default_factory=list, description="As an application's `reasons`")
    eligible_from: date | None = Field(default=None, description="As an application's `eligible_from`")
    renew: list[str] = Field(default_factory=list, description="As an application's `renew`")


class PrescreenResponse(BaseModel):
    results: list[PrescreenResult]


class FormatQuery(BaseModel):
    format: Literal["json", "fhir"] | None = Field(
        default=None, description="`fhir` answers as a FHIR R4B resource (also Accept: application/fhir+json)"
    )


# --- ClinicalTrials.gov API v2 study records (POST /api/v1/trials, `accrual trials import`) ----------

# The columns the record's fields land in (models/trial.py): a longer value is refused here, at the
# edge, rather than by the database in the middle of an import (PostgreSQL) or never (SQLite).
TITLE_MAX = 600
SPONSOR_MAX = 300
NCT_ID_MAX = 16
ORG_STUDY_ID_MAX = 64
AGE_MAX = 32
SITE_NAME_MAX = 300
PLACE_MAX = 120
ENROLLMENT_MAX = 1_000_000  # as for PATCH's enrollment_target; the column is a 32-bit integer
# Control characters (NUL among them) and lone surrogates: no column stores them faithfully, and
# PostgreSQL refuses NUL outright.
NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _one_line(value: str) -> str:
    if NOT_ONE_LINE.search(value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


RecordText = Annotated[str, AfterValidator(_one_line)]


class RegistryModule(BaseModel):
    """Part of a study record: the fields Accrual reads are checked strictly, the rest kept as sent."""

    model_config = ConfigDict(extra="allow", strict=True)


class OrgStudyIdInfo(RegistryModule):
    id: Annotated[RecordText, Field(max_length=ORG_STUDY_ID_MAX)] | None = None


class IdentificationModule(RegistryModule):
    nctId: Annotated[str, Field(min_length=1, max_length=NCT_ID_MAX, pattern=IDENTIFIER_PATTERN)] | None = (
        None
    )
    orgStudyIdInfo: OrgStudyIdInfo | None = None
    briefTitle: Annotated[RecordText, Field(max_length=TITLE_MAX)] | None = None
    officialTitle: Annotated[RecordText, Field(max_length=TITLE_MAX)] | None = None


class StatusModule(RegistryModule):
    overallStatus: TrialStatusName


class LeadSponsor(RegistryModule):
    name: Annotated[RecordText, Field(max_length=SPONSOR_MAX)] | None = None


class SponsorCollaboratorsModule(RegistryModule):
    leadSponsor: LeadSponsor | None = None


class EnrollmentInfo(RegistryModule):
    count: Annotated[int, Field(ge=0, le=ENROLLMENT_MAX)] | None = None
    type: Literal["ACTUAL", "ESTIMATED"] | None = None


class DesignModule(RegistryModule):
    phases: list[Annotated[RecordText, Field(max_length=32)]] | None = None
    enrollmentInfo: EnrollmentInfo | None = None


class ConditionsModule(RegistryModule):
    conditions: list[Annotated[RecordText, Field(max_length=TITLE_MAX)]] | None = None
    keywords: list[Annotated[RecordText, Field(max_length=TITLE_MAX)]] | None = None


class EligibilityModule(RegistryModule):
    minimumAge: Annotated[RecordText, Field(max_length=AGE_MAX)] | None = None
    maximumAge: Annotated[RecordText, Field(max_length=AGE_MAX)] | None = None
    sex: Literal["ALL", "FEMALE", "MALE"] | None = None


class Location(RegistryModule):
    facility: Annotated[RecordText, Field(max_length=SITE_NAME_MAX)]
    city: Annotated[RecordText, Field(max_length=PLACE_MAX)] | None = None
    country: Annotated[RecordText, Field(max_length=PLACE_MAX)] | None = None
    status: TrialStatusName | None = None


class ContactsLocationsModule(RegistryModule):
    locations: list[Location] | None = None


class ProtocolSection(RegistryModule):
    identificationModule: IdentificationModule = Field(default_factory=IdentificationModule)
    statusModule: StatusModule
    sponsorCollaboratorsModule: SponsorCollaboratorsModule = Field(default_factory=SponsorCollaboratorsModule)
    designModule: DesignModule = Field(default_factory=DesignModule)
    conditionsModule: ConditionsModule = Field(default_factory=ConditionsModule)
    eligibilityModule: EligibilityModule = Field(default_factory=EligibilityModule)
    contactsLocationsModule: ContactsLocationsModule = Field(default_factory=ContactsLocationsModule)


class StudyRecord(RegistryModule):
    """A ClinicalTrials.gov API v2 study record (the registry's own JSON)."""

    protocolSection: ProtocolSection


class ReviewApplication(BaseModel):
    """The investigator's decision on an application that needs review."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["eligible", "ineligible"]
    reason: str = Field(min_length=1, max_length=2000)


WithdrawalCode = Literal["declined", "not_reachable", "consent_withdrawn", "investigator_decision", "other"]
WITHDRAWAL_CODES: tuple[str, ...] = get_args(WithdrawalCode)


class WithdrawApplication(BaseModel):
    """A withdrawal's coded reason (contract v1.2) and free text. `reason` alone (the v1 body) is kept:
    a `reason` that is one of the codes is that code, any other text is `other` with that text."""

    model_config = ConfigDict(extra="forbid")

    code: WithdrawalCode | None = Field(
        default=None, description="declined, not_reachable, consent_withdrawn, investigator_decision or other"
    )
    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="free text; required for `other`",
        validate_default=True,
    )

    @field_validator("reason", mode="after")
    @classmethod
    def _reason_or_code(cls, reason: str | None, info: ValidationInfo) -> str | None:
        code = info.data.get("code")
        if reason is None and code in (None, "other"):
            raise ValueError(
                "a free-text reason is needed without a `code` (declined, not_reachable, consent_withdrawn, "
                "investigator_decision) and with `other`"
            )
        return reason

    @property
    def reason_code(self) -> str:
        if self.code is not None:
            return self.code
        return self.reason if self.reason in WITHDRAWAL_CODES else "other"


class EnrollApplication(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class TrialChanges(BaseModel):
    """What an admin may change on a trial; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    overall_status: TrialStatusName | None = None
    enrollment_target: int | None = Field(default=None, ge=0, le=1_000_000)


class SiteChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: TrialStatusName | None = None
    enrollment_target: int | None = Field(default=None, ge=0, le=1_000_000)


class NewSite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=300)
    city: str | None = Field(default=None, max_length=120)
    country: str | None = Field(default=None, max_length=120)
    status: TrialStatusName = "RECRUITING"
    enrollment_target: int | None = Field(default=None, ge=0, le=1_000_000)


class SitePath(BaseModel):
    trial_id: Identifier
    site_id: Identifier


class PublicTrial(BaseModel):
    """What anyone may see: nothing about any applicant but how many applied."""

    trial_id: str
    title: str
    conditions: list[str]
    overall_status: TrialStatusName
    cities: list[str]
    applied_count: int


class ReportSite(BaseModel):
    site_id: str
    name: str
    status: TrialStatusName
    applied_count: int | None
    enrolled_count: int | None
    enrollment_target: int | None
    suppressed: list[str] = Field(
        default_factory=list,
        description="The count fields of this entry withheld (null) by small-cell suppression",
    )


class ScreenFailure(BaseModel):
    criterion_id: str
    text: str
    count: int | None = Field(description="Applications now ineligible that this criterion excluded")
    suppressed: list[str] = Field(
        default_factory=list,
        description="The count fields of this entry withheld (null) by small-cell suppression",
    )


class WeekCount(BaseModel):
    week_start: date
    applied: int | None
    enrolled: int | None
    suppressed: list[str] = Field(
        default_factory=list,
        description="The count fields of this entry withheld (null) by small-cell suppression",
    )


class Forecast(BaseModel):
    enrolled_per_week: float = Field(description="Posterior mean enrolment rate")
    projected_target_date: date | None = Field(description="Median projected date the target is reached")
    interval_80: list[date] | None = Field(description="10th and 90th percentile of that date")
    model: Literal["poisson-gamma"]


class DoseLevelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: int = Field(ge=1, le=100)
    dose: str = Field(min_length=1, max_length=200)


class DoseEscalationIn(BaseModel):
    """A 3+3 design: the dose levels in ascending order, the cohort, its expansion, the DLT window."""

    model_config = ConfigDict(extra="forbid")

    levels: list[DoseLevelIn] = Field(min_length=1, max_length=50)
    cohort_size: int = Field(default=3, ge=1, le=20)
    max_per_level: int = Field(default=6, ge=1, le=40)
    dlt_window_days: int = Field(ge=1, le=3650)

    @model_validator(mode="after")
    def _ascending_and_expandable(self) -> DoseEscalationIn:
        numbers = [level.level for level in self.levels]
        if numbers != sorted(set(numbers)):
            raise ValueError("levels must be numbered in ascending order, each once")
        if self.max_per_level < self.cohort_size:
            raise ValueError("max_per_level must be at least cohort_size")
        return self


class DoseLevelOut(BaseModel):
    level: int
    dose: str
    enrolled: int
    evaluable: int
    dlts: int
    state: Literal["pending", "open", "closed", "expanded", "too_toxic"]


class DoseRecommendationOut(BaseModel):
    action: Literal["escalate", "expand", "stop", "wait"]
    level: int | None
    reason: str


class DoseEscalationOut(BaseModel):
    open_level: int | None = Field(description="The level enrolment goes to; null once escalation stopped")
    levels: list[DoseLevelOut]
    recommendation: DoseRecommendationOut
    mtd_level: int | None
    cohort_size: int
    max_per_level: int
    dlt_window_days: int


class DltIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dlt: bool
    evaluable: bool
    observed_on: date


class DoseDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["escalate", "expand", "stop"]
    reason: str = Field(min_length=1, max_length=2000)


class DecisionCounts(BaseModel):
    eligible: int | None = 0
    ineligible: int | None = 0
    needs_review: int | None = 0
    suppressed: list[str] = Field(
        default_factory=list, description="Counts withheld as small cells (null above)"
    )


class SitePreview(BaseModel):
    site_id: str
    before: DecisionCounts
    after: DecisionCounts


class CriterionPreview(BaseModel):
    criterion_id: str
    excluded_before: int | None = Field(
        description="Applications this criterion excludes under the current version"
    )
    excluded_after: int | None = Field(description="Applications it would exclude under the draft")
    suppressed: list[str] = Field(default_factory=list, description="Counts withheld as small cells")


class ForecastPreview(BaseModel):
    projected_target_date_before: date | None
    projected_target_date_after: date | None = Field(
        description="With the enrolment rate scaled by the share of eligible applicants the draft would give"
    )


class CriteriaPreview(BaseModel):
    """How a draft criteria set would move every decision of the trial; nothing is stored."""

    current_version: int | None
    applications_considered: int
    before: DecisionCounts
    after: DecisionCounts
    by_site: list[SitePreview]
    by_criterion: list[CriterionPreview]
    changed: list[str] = Field(
        description="Applications whose decision would change (empty, and listed in `suppressed`, for a "
        "caller under a small-cell threshold: their ids are row-level data)"
    )
    forecast: ForecastPreview
    small_cell_threshold: int = Field(default=0, description="Counts from 1 to this minus 1 are withheld")
    suppressed: list[str] = Field(default_factory=list, description="Fields withheld from this caller")


class ConsortCount(BaseModel):
    criterion_id: str
    count: int | None
    suppressed: list[str] = Field(
        default_factory=list,
        description="The count fields of this entry withheld (null) by small-cell suppression",
    )


class ConsortReason(BaseModel):
    reason: str = Field(
        description="A withdrawal's coded reason (declined, not_reachable, consent_withdrawn, "
        "investigator_decision, other), or where the others stand: awaiting_screening, awaiting_review, "
        "awaiting_enrolment"
    )
    count: int | None
    suppressed: list[str] = Field(
        default_factory=list,
        description="The count fields of this entry withheld (null) by small-cell suppression",
    )


class ConsortArm(BaseModel):
    arm_id: str | None = Field(description="The arm; null for blinded callers, who get the total only")
    count: int | None
    suppressed: list[str] = Field(
        default_factory=list,
        description="The count fields of this entry withheld (null) by small-cell suppression",
    )


class ConsortExcluded(BaseModel):
    ineligible: int | None
    reasons: list[ConsortCount] = Field(description="The criteria that excluded, most frequent first")
    not_enrolled: list[ConsortReason] = Field(description="Not ineligible, and not enrolled: why")
    suppressed: list[str] = Field(
        default_factory=list,
        description="The count fields of this entry withheld (null) by small-cell suppression",
    )


class Consort(BaseModel):
    """The CONSORT flow of the trial's applicants, from its counters."""

    assessed: int
    excluded: ConsortExcluded
    enrolled: int
    allocated: list[ConsortArm] = Field(
        description="Per arm for unblinded callers; a trial without randomisation allocates nobody"
    )
    withdrawn_after_enrolment: int | None
    suppressed: list[str] = Field(
        default_factory=list,
        description="The count fields of this entry withheld (null) by small-cell suppression",
    )


class RecruitmentReport(BaseModel):
    trial_id: str
    overall_status: TrialStatusName
    enrollment_target: int | None
    applied_count: int = Field(
        description="Each applicant (trial, site, screening id) once, whatever its status"
    )
    counts: dict[str, int | None] = Field(
        description="Applications by status, each once: `enrolled` counts every participant ever enrolled, "
        "`withdrawn` the withdrawals before enrolment"
    )
    sites: list[ReportSite]
    screen_failures: list[ScreenFailure]
    weekly: list[WeekCount]
    forecast: Forecast
    withdrawn_after_enrolment: int | None = Field(
        description="Participants withdrawn after enrolment, reported apart: still counted in "
        "`counts.enrolled`, since the place they took is not freed"
    )
    consort: Consort
    suppressed: list[str] = Field(
        default_factory=list,
        description="The report's own count fields withheld (null) by small-cell suppression: "
        "`counts.<status>`, `withdrawn_after_enrolment`",
    )
    small_cell_threshold: int = Field(
        default=0,
        description="Counts below the trial level from 1 to this minus one are withheld, with the cells "
        "that would give one away; 0: none is (admins)",
    )


# --- the event feed and webhooks ---------------------------------------------------------------------


class EventQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: str | None = Field(
        default=None, max_length=1000, description="`next_cursor` of the previous page; omit to start"
    )
    limit: int = Field(default=100, ge=1, le=1000)


class EventPage(BaseModel):
    items: list[EventOut]
    next_cursor: str = Field(
        description="Pass as `after` to continue; the same cursor comes back while nothing is new"
    )


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=8, max_length=2048, description="https:// endpoint receiving the events")
    event_types: list[EventTypeName] = Field(min_length=1, max_length=20)


class WebhookPath(BaseModel):
    webhook_id: Identifier


class DeliveryPath(BaseModel):
    webhook_id: Identifier
    delivery_id: Identifier


class DeliveryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["pending", "succeeded", "failed", "cancelled"] | None = None
    limit: int = Field(default=100, ge=1, le=500)


class WebhookOut(BaseModel):
    id: str
    url: str
    event_types: list[EventTypeName]
    status: Literal["active", "disabled"]
    disabled_reason: str | None
    created_at: datetime
    previous_secret_until: datetime | None = Field(
        default=None,
        description="After POST .../rotate-secret: until when deliveries are signed with the replaced "
        "secret too (a second v1 signature); null when only the current secret signs",
    )


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret (whsec_...); shown this once, never again")


class WebhookList(BaseModel):
    items: list[WebhookOut]


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None


class DeliveryOut(BaseModel):
    id: str
    event_id: str = Field(description="Also the webhook-id header: the same on every attempt")
    event_type: str
    status: Literal["pending", "succeeded", "failed", "cancelled"]
    next_attempt_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


# --- the audit trail ---------------------------------------------------------------------------------


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime | None = Field(
        default=None,
        description="Only the state in force at this moment (ISO 8601 with a UTC offset); all when absent",
    )


class RevisionOut(BaseModel):
    seq: int = Field(description="The audit entry that made this state")
    at: datetime = Field(description="When, by the database's clock")
    actor: str
    actor_role: str
    service: str | None = Field(description="The process that wrote it, `role@host:pid`")
    request_id: str | None = Field(description="The request that caused it (`X-Request-Id`)")
    action: str = Field(description="`create` or `change`")
    state: dict[str, Any] = Field(
        description="The application just after this change: its recorded columns, observations and "
        "screening id included"
    )


class ApplicationHistoryOut(BaseModel):
    application_id: str
    revisions: list[RevisionOut] = Field(description="Oldest first; with `at`, the one then in force")


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity: Literal["trial", "site", "criteria", "application", "token", "webhook"] | None = None
    id: str | None = Field(default=None, max_length=100, description="The entity's id")
    request_id: str | None = Field(
        default=None,
        max_length=64,
        description="Only entries caused by this request (its `X-Request-Id`), by whichever process",
    )
    # seq is a 64-bit column: a larger number cannot even be bound to a query, so it is refused here.
    after: int = Field(default=0, ge=0, le=2**63 - 1, description="`next_after` of the previous page")
    limit: int = Field(default=100, ge=1, le=1000)


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    actor: str = Field(description="The token id that acted, or `system` / `cli`")
    actor_role: str
    entity: str
    entity_id: str
    action: str = Field(description="create, change, delete or read")
    changes: dict[str, Any] = Field(
        description="Per changed field: [previous, new]; clinical fields name keys only"
    )
    service: str | None = Field(
        default=None, description="The process that wrote it, `role@host:pid` (null before revision 0024)"
    )
    request_id: str | None = Field(
        default=None, description="The request that caused it (`X-Request-Id`), also for a worker's acts"
    )
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_after: int
