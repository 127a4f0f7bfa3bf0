"""The contract's enumerations, stored as strings."""

from enum import StrEnum


class TrialStatus(StrEnum):
    NOT_YET_RECRUITING = "NOT_YET_RECRUITING"
    RECRUITING = "RECRUITING"
    ENROLLING_BY_INVITATION = "ENROLLING_BY_INVITATION"
    ACTIVE_NOT_RECRUITING = "ACTIVE_NOT_RECRUITING"
    SUSPENDED = "SUSPENDED"
    TERMINATED = "TERMINATED"
    COMPLETED = "COMPLETED"
    WITHDRAWN = "WITHDRAWN"
    UNKNOWN = "UNKNOWN"

    @property
    def accepts_applications(self) -> bool:
        return self in (TrialStatus.RECRUITING, TrialStatus.ENROLLING_BY_INVITATION)


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    NEEDS_REVIEW = "needs_review"
    ENROLLED = "enrolled"
    WITHDRAWN = "withdrawn"


class WithdrawalReason(StrEnum):
    """Why an application or a participant was withdrawn (contract v1.2); `other` comes with free text."""

    DECLINED = "declined"
    NOT_REACHABLE = "not_reachable"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    INVESTIGATOR_DECISION = "investigator_decision"
    OTHER = "other"


class Decision(StrEnum):
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    NEEDS_REVIEW = "needs_review"


class Outcome(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    UNKNOWN = "unknown"
    JUDGMENT = "judgment"


class CriterionKind(StrEnum):
    INCLUSION = "inclusion"
    EXCLUSION = "exclusion"


class Role(StrEnum):
    ADMIN = "admin"
    COORDINATOR = "coordinator"
    SPONSOR = "sponsor"


class EventStatus(StrEnum):
    PENDING = "pending"
    PUBLISHED = "published"
    DEAD = "dead"
