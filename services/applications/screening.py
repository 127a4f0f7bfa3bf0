"""Screening use case: decide one submitted application, exactly once however often it is delivered."""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from models import Application, ProcessedMessage, Screening, Trial
from models.db import Database
from services.applications import transitions
from services.applications.results import stored
from services.applications.transitions import Action
from services.eligibility import Evaluation
from services.trials.criteria import compiled_version

log = logging.getLogger(__name__)

CONSUMER = "screening"
SERVICE_ACTOR = "service:screening-worker"
POISON_NOTE = "Automatic screening failed {n} times; the criteria must be checked by hand."
FAILED_NOTE = (
    "Automatic screening could not run ({cause}); set aside for review: once the cause is fixed, "
    "`accrual screening retry` screens it again."
)
# A database that is away, restarting or saturated: the task retries these, and a redelivery may pass.
TRANSIENT: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeoutError)
SCREENED_FROM = transitions.allowed_from(Action.SCREEN)


class ScreeningImpossible(LookupError):
    """Screening cannot run for a reason no redelivery cures; the message names no applicant data."""


@dataclass(frozen=True)
class ScreeningOutcome:
    application_id: str
    status: str  # decided | duplicate | missing
    decision: str | None = None


def count_delivery(db: Database, application_id: str) -> int | None:
    """Count a delivery in its own transaction, so a message that kills its worker is still counted."""
    with db.transaction() as session:
        result = session.execute(
            update(Application)
            .where(Application.id == application_id, Application.status.in_(SCREENED_FROM))
            .values(screening_deliveries=Application.screening_deliveries + 1)
            .returning(Application.screening_deliveries)
        )
        row = result.first()
    return None if row is None else int(row[0])


def screen_application(
    db: Database,
    application_id: str,
    message_id: str,
    max_deliveries: int,
    also_transient: tuple[type[Exception], ...] = (),
) -> ScreeningOutcome:
    """Evaluate the application against its trial's current criteria and record the decision once.

    A failure that is not transient (TRANSIENT, `also_transient`) sets the application aside in
    review, dead-lettered, rather than leaving it `submitted` for the sweep to redeliver for ever.
    """
    deliveries = count_delivery(db, application_id)
    if deliveries is None:
        return ScreeningOutcome(application_id, "duplicate")
    try:
        with db.transaction() as session:
            return _decide(session, application_id, message_id, deliveries, max_deliveries)
    except IntegrityError:
        return _already_recorded(application_id)
    except (*TRANSIENT, *also_transient):
        raise
    except Exception as exc:
        cause = str(exc) if isinstance(exc, ScreeningImpossible) else f"{type(exc).__name__} raised"
        # The exception's text and traceback may quote observations: the log gets its type and place.
        log.error(
            "screening of %s failed (%s at %s); dead-lettered for review", application_id, cause, _where(exc)
        )
        return _set_aside(db, application_id, message_id, FAILED_NOTE.format(cause=cause))


def _already_recorded(application_id: str) -> ScreeningOutcome:
    # A concurrent delivery of the same message committed first: its decision stands.
    log.info("screening of %s was already recorded by another delivery", application_id)
    return ScreeningOutcome(application_id, "duplicate")


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "unknown"


def _set_aside(db: Database, application_id: str, message_id: str, reason: str) -> ScreeningOutcome:
    """Dead-letter the application in a fresh transaction: needs_review, with the note, not evaluated."""
    try:
        with db.transaction() as session:
            application = _open_application(session, application_id, message_id)
            if isinstance(application, ScreeningOutcome):
                return application
            version = session.get_one(Trial, application.trial_id).current_criteria_version
            return _dead_letter(session, application, message_id, version, reason)
    except IntegrityError:
        return _already_recorded(application_id)


def _open_application(
    session: Session, application_id: str, message_id: str
) -> Application | ScreeningOutcome:
    """The still-submitted application, locked; or why this delivery has nothing to decide."""
    if session.get(ProcessedMessage, (CONSUMER, message_id)) is not None:
        return ScreeningOutcome(application_id, "duplicate")
    # FOR UPDATE: a correction committed meanwhile waits, then finds the decision and screens again.
    application = session.get(Application, application_id, with_for_update=True)
    if application is None:
        return ScreeningOutcome(application_id, "missing")
    if not transitions.allows(application.status, Action.SCREEN):
        return ScreeningOutcome(application_id, "duplicate")
    return application


def _dead_letter(
    session: Session, application: Application, message_id: str, version: int | None, reason: str
) -> ScreeningOutcome:
    """needs_review without evaluating, stamped dead_lettered_at, for `accrual screening retry`."""
    evaluation = Evaluation("needs_review", ())
    if not _record(session, application, Action.DEAD_LETTER, evaluation, version, reason):
        return ScreeningOutcome(application.id, "duplicate")
    session.add(ProcessedMessage(consumer=CONSUMER, message_id=message_id))
    return ScreeningOutcome(application.id, "decided", evaluation.decision)


def _decide(
    session: Session, application_id: str, message_id: str, deliveries: int, max_deliveries: int
) -> ScreeningOutcome:
    application = _open_application(session, application_id, message_id)
    if isinstance(application, ScreeningOutcome):
        return application
    # FOR SHARE: an amendment's version change waits for this decision to commit, and then re-screens it.
    trial = session.get_one(Trial, application.trial_id, with_for_update={"read": True})
    version = trial.current_criteria_version
    if deliveries > max_deliveries:
        # Every earlier delivery died before committing (it killed its worker, or timed out): do not
        # evaluate again. The application waits in review, listed for `accrual screening retry`.
        log.error("screening of %s dead-lettered after %d deliveries", application_id, deliveries)
        return _dead_letter(session, application, message_id, version, POISON_NOTE.format(n=deliveries - 1))
    if version is None:  # intake refuses such trials; an application from before that rule may remain
        raise ScreeningImpossible(f"trial {trial.trial_id} has no criteria")
    compiled = compiled_version(session, trial.trial_id, version)
    evaluation = compiled.evaluate(application.observations, application.submitted_at.date())
    if not _record(session, application, Action.SCREEN, evaluation, version, None):
        return ScreeningOutcome(application_id, "duplicate")
    session.add(ProcessedMessage(consumer=CONSUMER, message_id=message_id))
    return ScreeningOutcome(application_id, "decided", evaluation.decision)


def _record(
    session: Session,
    application: Application,
    action: Action,
    evaluation: Evaluation,
    version: int | None,
    reason: str | None,
) -> bool:
    """The decision, once (False: another delivery decided first), and the screening round it came from."""
    if not transitions.decide(
        session, application, action, evaluation, version, by=SERVICE_ACTOR, reason=reason
    ):
        return False
    if version is not None:  # a screening round is against a criteria version: without one, none ran
        _add_screening(session, application, evaluation, version)
    return True


def _add_screening(session: Session, application: Application, evaluation: Evaluation, version: int) -> None:
    session.add(
        Screening(
            application_id=application.id,
            round=application.screening_round,
            criteria_version=version,
            decision=evaluation.decision,
            results=stored(evaluation),
        )
    )
