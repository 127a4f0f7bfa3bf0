"""The application's state machine: what each action may do from each status, and the one writer.

`TRANSITIONS` is an application's whole life as a table `(status, action) -> statuses`: an action that
decides (screening, review, re-screening) ends in the status its decision names, among those the table
allows; every other action has exactly one end. Every path that changes an application calls this module
(intake, screening and its dead letters, re-screening after an amendment, corrections, an investigator's
review, enrolment, withdrawal, an operator's retry), and only this module writes an application's status
and decision, its history row, the `application.*` event that announces the change, the audit note of
screening's guarded Core UPDATE and of intake's Core INSERT (services.audit notes ORM changes itself
on flush) and the change to the recruitment counts (services.reporting.counts). The paths keep their
own SQL guards (row locks, the conditional UPDATE that makes a decision exactly-once, the batch queries
of re-screening) and hand this module the rows they hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from models import (
    Application,
    ApplicationHistory,
    ApplicationStatus,
    AuditPending,
    CountChange,
    CountedApplication,
    Event,
)
from models.application import observations_binding
from models.base import utcnow
from models.dependent_inserts import Dependents, insert_unless_present
from models.sealing import Sealed, keyring_of
from services.audit import note, note_created, take_signed_entries
from services.eligibility import Evaluation
from services.errors import Conflict
from services.events.catalogue import (
    ApplicationEnrolled,
    ApplicationEvent,
    ApplicationReviewed,
    ApplicationScreened,
    ApplicationSubmitted,
    ApplicationUpdated,
    ApplicationWithdrawn,
)
from services.events.outbox import add_event, event_row
from services.events.wakeup import OUTBOX, wake
from services.reporting import counts
from services.reporting.counts import Changes

Status = ApplicationStatus


class Action(StrEnum):
    """What can happen to an application; each path of the service performs one of these."""

    SUBMIT = "submit"  # a coordinator's submission stores it
    SCREEN = "screen"  # the screening worker decides it
    DEAD_LETTER = "dead_letter"  # screening gave up on it: set aside for review, not evaluated
    REVIEW = "review"  # an investigator decides what screening left open
    ENROLL = "enroll"
    WITHDRAW = "withdraw"
    CORRECT = "correct"  # corrected observations send it back to screening
    RESCREEN = "rescreen"  # screened again under an amended criteria version
    RETRY = "retry"  # an operator sends a dead letter back to screening


DECISIONS = frozenset({Status.ELIGIBLE, Status.INELIGIBLE, Status.NEEDS_REVIEW})
_SUBMITTED = frozenset({Status.SUBMITTED})
_WITHDRAWN = frozenset({Status.WITHDRAWN})

# `None` is an application not stored yet. What is absent is refused.
TRANSITIONS: dict[tuple[Status | None, Action], frozenset[Status]] = {
    (None, Action.SUBMIT): _SUBMITTED,
    (Status.SUBMITTED, Action.SCREEN): DECISIONS,
    (Status.SUBMITTED, Action.DEAD_LETTER): frozenset({Status.NEEDS_REVIEW}),
    (Status.NEEDS_REVIEW, Action.REVIEW): frozenset({Status.ELIGIBLE, Status.INELIGIBLE}),
    (Status.ELIGIBLE, Action.ENROLL): frozenset({Status.ENROLLED}),
    (Status.SUBMITTED, Action.WITHDRAW): _WITHDRAWN,
    (Status.ELIGIBLE, Action.WITHDRAW): _WITHDRAWN,
    (Status.NEEDS_REVIEW, Action.WITHDRAW): _WITHDRAWN,
    # Contract v1.1: an enrolled participant can leave; the place stays taken (the enrolled counters
    # do not go down) and the report counts the withdrawal apart.
    (Status.ENROLLED, Action.WITHDRAW): _WITHDRAWN,
    # Enrolled and withdrawn applications are closed: their observations are what was decided on.
    (Status.SUBMITTED, Action.CORRECT): _SUBMITTED,
    (Status.ELIGIBLE, Action.CORRECT): _SUBMITTED,
    (Status.INELIGIBLE, Action.CORRECT): _SUBMITTED,
    (Status.NEEDS_REVIEW, Action.CORRECT): _SUBMITTED,
    # `submitted` ones are screened under the current version anyway; an amendment never reopens an
    # ineligible, enrolled or withdrawn application.
    (Status.ELIGIBLE, Action.RESCREEN): DECISIONS,
    (Status.NEEDS_REVIEW, Action.RESCREEN): DECISIONS,
    (Status.NEEDS_REVIEW, Action.RETRY): _SUBMITTED,
}

# The event each action announces (services.events.catalogue declares their payloads).
EVENTS: dict[Action, type[ApplicationEvent]] = {
    Action.SUBMIT: ApplicationSubmitted,
    Action.SCREEN: ApplicationScreened,
    Action.DEAD_LETTER: ApplicationScreened,
    Action.RESCREEN: ApplicationScreened,
    Action.REVIEW: ApplicationReviewed,
    Action.ENROLL: ApplicationEnrolled,
    Action.WITHDRAW: ApplicationWithdrawn,
    Action.CORRECT: ApplicationUpdated,
    Action.RETRY: ApplicationUpdated,
}
# The `reason` of `application.updated`: why the application waits for screening again.
REOPEN_REASONS: dict[Action, str] = {
    Action.CORRECT: "observations_corrected",
    Action.RETRY: "screening_retried",
}


NOT_STORED = "not stored yet"


def _either(statuses: Sequence[str]) -> str:
    """`a`, `a or b`, `a, b or c`."""
    return statuses[0] if len(statuses) == 1 else ", ".join(statuses[:-1]) + " or " + statuses[-1]


class InvalidTransition(Conflict):
    """The application's status does not allow the action; names the status it is in (`status_now`)."""

    def __init__(self, status: str | None, action: Action) -> None:
        self.status_now = status
        self.action = action
        self.allowed = allowed_from(action)
        # Only SUBMIT starts from no status, and intake refuses a second submission before asking.
        shown = status or NOT_STORED
        allowed = _either(self.allowed) if self.allowed else NOT_STORED
        if action is Action.CORRECT:  # the words PATCH has always answered, without `status_now`
            detail = f"the application is {shown}; observations can be corrected while it is {allowed}"
            super().__init__(detail)
        else:
            detail = f"cannot {action} an application that is {shown}; {action} is allowed from {allowed}"
            super().__init__(detail, status_now=status)


def allowed_from(action: Action) -> tuple[Status, ...]:
    """The statuses `action` may start from, in the order of ApplicationStatus."""
    return tuple(status for status in Status if (status, action) in TRANSITIONS)


def _status(status: str | None) -> Status | None:
    return None if status is None else Status(status)


def allows(status: str | None, action: Action) -> bool:
    """Whether an application in `status` (None: not stored yet) may take `action`."""
    return (_status(status), action) in TRANSITIONS


def require(status: str | None, action: Action) -> None:
    """Raise InvalidTransition unless an application in `status` may take `action`."""
    if not allows(status, action):
        raise InvalidTransition(status, action)


def next_status(status: str | None, action: Action, decision: str | None = None) -> Status:
    """Where `action` takes an application in `status`; InvalidTransition if the status refuses it.

    A deciding action names its decision, which must be one the table lets it reach (ValueError if not:
    that is a bug in the caller, not a state the application is in).
    """
    targets = TRANSITIONS.get((_status(status), action))
    if targets is None:
        raise InvalidTransition(status, action)
    if decision is None and len(targets) == 1:
        return next(iter(targets))
    if decision is not None and decision in targets:
        return Status(decision)
    reachable = ", ".join(sorted(targets))
    raise ValueError(f"{action} from {status} reaches {reachable}, not {decision}")


# --- the writers ------------------------------------------------------------------------------------


def submit(session: Session, application: Application, by: str) -> bool:
    """Add a new application as `submitted`, with its first history row, `application.submitted`, its
    counts and its audit entry; False, and nothing written, if the applicant (trial, site, screening id)
    was submitted already.

    Written with Core, not by the unit of work (which adds nothing here but its cost): on PostgreSQL in
    one statement (models.dependent_inserts). `application` stays out of the session, its status and
    history set in memory for the answer."""
    status = next_status(None, Action.SUBMIT)
    application.status = status.value
    first = {"status": status.value, "at": application.submitted_at, "by": by, "reason": None}
    set_committed_value(application, "history", [ApplicationHistory(application_id=application.id, **first)])
    note_created(session, application)
    counted, changes = counts.submitted_counts(application)
    event = event_row(
        EVENTS[Action.SUBMIT].model_validate({}),
        trial_id=application.trial_id,
        site_id=application.site_id,
        application_id=application.id,
    )
    inserted = insert_unless_present(
        session,
        _table(Application),
        _application_row(session, application),
        APPLICANT_KEY,
        [
            Dependents(_table(ApplicationHistory), [{"application_id": application.id, **first}]),
            Dependents(_table(Event), [event]),
            Dependents(_table(CountedApplication), [counted]),
            Dependents(_table(CountChange), changes),
            Dependents(_table(AuditPending), take_signed_entries(session)),
        ],
    )
    if inserted:
        wake(session, OUTBOX)
    return inserted


APPLICANT_KEY = ("trial_id", "site_id", "screening_id")


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _application_row(session: Session, application: Application) -> dict[str, Any]:
    """Every column of a new application, its observations sealed to its row as the mapper would."""
    keyring = keyring_of(session.get_bind().dialect)
    observations = application.observations
    return {
        "id": application.id,
        "trial_id": application.trial_id,
        "site_id": application.site_id,
        "screening_id": application.screening_id,
        "status": application.status,
        "decision": None,
        "observations": Sealed(
            observations, keyring.seal(observations, observations_binding(application.id))
        ),
        "criteria_version": None,
        "screening_round": application.screening_round,
        "screening_deliveries": application.screening_deliveries,
        "submitted_at": application.submitted_at,
        "decided_at": None,
        "dead_lettered_at": None,
        "version": application.version,
    }


def decide(
    session: Session,
    application: Application,
    action: Action,
    evaluation: Evaluation,
    version: int | None,
    *,
    by: str,
    reason: str | None = None,
) -> bool:
    """Record screening's decision (SCREEN, or DEAD_LETTER without evaluating) exactly once.

    The guard is one conditional UPDATE: only an application still in a status the action starts from
    takes the decision, so of two deliveries racing, one wins and this returns False for the other.
    """
    status = next_status(application.status, action, evaluation.decision)
    now = utcnow()
    dead_lettered_at = now if action is Action.DEAD_LETTER else None
    result = session.execute(
        update(Application)
        .where(Application.id == application.id, Application.status.in_(allowed_from(action)))
        .values(
            status=status.value,
            decision=status.value,
            decided_at=now,
            criteria_version=version,
            dead_lettered_at=dead_lettered_at,
            version=Application.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return False
    _note_decision(session, application, status, version, now, dead_lettered_at)
    _add_history(session, application, status, by, reason, now)
    _announce_screened(session, application, action, evaluation, version)
    counts.count_change(session, application, status.value, evaluation.deciding)
    return True


def _note_decision(
    session: Session,
    application: Application,
    status: Status,
    version: int | None,
    now: datetime,
    dead_lettered_at: datetime | None,
) -> None:
    # A guarded Core UPDATE: the unit of work does not see it, so the audit trail is told here, with
    # every column it set (the application can be rebuilt from the trail as it stood at any moment).
    change: dict[str, list[Any]] = {
        "status": [application.status, status.value],
        "decision": [application.decision, status.value],
        "decided_at": [_iso(application.decided_at), now.isoformat()],
        "criteria_version": [application.criteria_version, version],
        "version": [application.version, application.version + 1],
    }
    if dead_lettered_at is not None:
        change["dead_lettered_at"] = [None, dead_lettered_at.isoformat()]
    note(session, "application", application.id, "change", change)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def rescreen(
    session: Session,
    application: Application,
    evaluation: Evaluation,
    version: int,
    *,
    automated: str | None,
    at: datetime,
    by: str,
    changes: Changes,
) -> bool:
    """Record a screening round under an amended criteria `version`; True if the status moved.

    The status moves only when the automated outcome changed (`automated`: the decision of the latest
    screening, before any review), so an unchanged outcome keeps an investigator's review. The counts
    it moves are added to `changes`, for the batch to write at once.
    """
    status = next_status(application.status, Action.RESCREEN, evaluation.decision)
    previous = application.decision
    application.screening_round += 1
    application.criteria_version = version
    application.version += 1
    if evaluation.decision == (automated or previous):
        return False
    application.decision = status.value
    application.status = status.value
    application.decided_at = at
    reason = f"screened again under criteria version {version} (was {previous})"
    _add_history(session, application, status, by, reason, at)
    _announce_screened(session, application, Action.RESCREEN, evaluation, version)
    counts.count_change(session, application, status.value, evaluation.deciding, changes)
    return True


def advance(
    session: Session,
    application: Application,
    action: Action,
    *,
    by: str,
    reason: str | None,
    decision: str | None = None,
    reason_code: str | None = None,
) -> None:
    """A person's step (REVIEW with its decision, ENROLL, WITHDRAW with its coded reason), in the
    history and announced."""
    status = next_status(application.status, action, decision)
    if action is Action.REVIEW:
        application.decision = status.value
    application.status = status.value
    application.version += 1
    _add_history(session, application, status, by, reason, utcnow(), reason_code)
    _announce(session, application, action, {"status": status.value})
    failed = counts.screened_out_by(session, application)
    counts.count_change(session, application, status.value, failed, reason_code=reason_code)


def reopen(session: Session, application: Application, action: Action, *, by: str, reason: str) -> None:
    """Back to `submitted` for a new screening round (CORRECT, RETRY), its deliveries and dead letter
    cleared, with `application.updated` for the relay to hand to a worker."""
    status = next_status(application.status, action)
    application.status = status.value
    application.decision = None
    application.decided_at = None
    application.dead_lettered_at = None
    application.screening_round += 1
    application.screening_deliveries = 0
    application.version += 1
    _add_history(session, application, status, by, reason, utcnow())
    _announce(session, application, action, {"reason": REOPEN_REASONS[action]})
    counts.count_change(session, application, status.value)


def _add_history(
    session: Session,
    application: Application,
    status: Status,
    by: str,
    reason: str | None,
    at: datetime,
    reason_code: str | None = None,
) -> None:
    # Added to the session, not to `application.history`: appending would load the whole history first.
    session.add(
        ApplicationHistory(
            application_id=application.id,
            status=status.value,
            at=at,
            by=by,
            reason=reason,
            reason_code=reason_code,
        )
    )


def _announce_screened(
    session: Session, application: Application, action: Action, evaluation: Evaluation, version: int | None
) -> None:
    """`application.screened`: the decision, the criteria version and the criteria that decided it."""
    data = {
        "decision": evaluation.decision,
        "criteria_version": version,
        "criteria": list(evaluation.deciding),
    }
    _announce(session, application, action, data)


def _announce(
    session: Session, application: Application, action: Action, data: dict[str, Any] | None = None
) -> None:
    add_event(
        session,
        EVENTS[action].model_validate(data or {}),
        trial_id=application.trial_id,
        site_id=application.site_id,
        application_id=application.id,
    )
