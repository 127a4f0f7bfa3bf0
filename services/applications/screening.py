"""Screening use case: decide one submitted application, exactly once however often it is delivered."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from models import Application, ProcessedMessage, Screening, Trial
from models.db import Database
from services.applications import transitions
from services.applications.results import stored
from services.applications.transitions import Action
from services.eligibility import Evaluation
from services.events.outbox import requests_of
from services.provenance import correlated
from services.reporting.counts import preload_counted
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
    counted: int | None = None,
) -> ScreeningOutcome:
    """Evaluate the application against its trial's current criteria and record the decision once.

    A failure that is not transient (TRANSIENT, `also_transient`) sets the application aside in
    review, dead-lettered, rather than leaving it `submitted` for the sweep to redeliver for ever.
    `counted`: this delivery was already counted (by its batch), as the delivery count it made.
    """
    with db.reading() as session:
        cause = requests_of(session, [message_id]).get(message_id)
    with correlated(cause):  # its audit entries, events and log line lead back to the request
        outcome = _screen_one(db, application_id, message_id, max_deliveries, also_transient, counted)
        log.info("screening of %s: %s", application_id, outcome.status)
        return outcome


def _screen_one(
    db: Database,
    application_id: str,
    message_id: str,
    max_deliveries: int,
    also_transient: tuple[type[Exception], ...],
    counted: int | None,
) -> ScreeningOutcome:
    deliveries = count_delivery(db, application_id) if counted is None else counted
    if deliveries is None:
        return ScreeningOutcome(application_id, "duplicate")
    try:
        with db.transaction() as session:
            return _decide(session, application_id, message_id, deliveries, max_deliveries)
    except IntegrityError:
        return _already_recorded(application_id)
    except TRANSIENT as exc:
        if counted is None and connection_lost(exc):  # counted here; a batch gives back what it counted
            give_back_deliveries(db, [application_id])
        raise
    except also_transient:
        raise
    except Exception as exc:
        return _set_aside(db, application_id, message_id, _failure_note(application_id, exc))


def _failure_note(application_id: str, exc: Exception) -> str:
    """The dead letter's note for a screening that raised `exc`, logged without the exception's text."""
    cause = str(exc) if isinstance(exc, ScreeningImpossible) else f"{type(exc).__name__} raised"
    # The exception's text and traceback may quote observations: the log gets its type and place.
    log.error(
        "screening of %s failed (%s at %s); dead-lettered for review", application_id, cause, _where(exc)
    )
    return FAILED_NOTE.format(cause=cause)


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
    if deliveries > max_deliveries:
        return _give_up(session, application, message_id, trial, deliveries)
    evaluation = _evaluate(session, application, trial)
    return _decided(session, application, message_id, trial, evaluation)


def _give_up(
    session: Session, application: Application, message_id: str, trial: Trial, deliveries: int
) -> ScreeningOutcome:
    # Every earlier delivery died before committing (it killed its worker, or timed out): do not
    # evaluate again. The application waits in review, listed for `accrual screening retry`.
    log.error("screening of %s dead-lettered after %d deliveries", application.id, deliveries)
    version = trial.current_criteria_version
    return _dead_letter(session, application, message_id, version, POISON_NOTE.format(n=deliveries - 1))


def _evaluate(session: Session, application: Application, trial: Trial) -> Evaluation:
    """The application against its trial's current criteria; pure but for reading the compiled set."""
    version = trial.current_criteria_version
    if version is None:  # intake refuses such trials; an application from before that rule may remain
        raise ScreeningImpossible(f"trial {trial.trial_id} has no criteria")
    compiled = compiled_version(session, trial.trial_id, version)
    return compiled.evaluate(application.observations, application.submitted_at.date())


def _decided(
    session: Session, application: Application, message_id: str, trial: Trial, evaluation: Evaluation
) -> ScreeningOutcome:
    if not _record(session, application, Action.SCREEN, evaluation, trial.current_criteria_version, None):
        return ScreeningOutcome(application.id, "duplicate")
    session.add(ProcessedMessage(consumer=CONSUMER, message_id=message_id))
    return ScreeningOutcome(application.id, "decided", evaluation.decision)


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


# --- batches ------------------------------------------------------------------------------------------


def screen_batch(
    db: Database,
    items: Sequence[tuple[str, str]],
    max_deliveries: int,
    also_transient: tuple[type[Exception], ...] = (),
) -> list[ScreeningOutcome]:
    """Decide a batch of (application id, message id) in one transaction, exactly once each.

    One compiled criteria set per trial version serves the whole batch. An application whose
    evaluation raises is dead-lettered in the batch's transaction without holding back the others. A
    batch some application of which was delivered before (an earlier delivery died before committing,
    perhaps killed by one of them) is screened one application at a time instead, each delivery counted
    as it is reached, so an application that kills its worker is dead-lettered alone.
    """
    ids = [application_id for application_id, _ in items]
    if len(items) == 1 or _delivered_before(db, ids):
        return _one_at_a_time(db, items, max_deliveries, also_transient)
    deliveries = count_deliveries(db, ids)
    try:
        try:
            with db.transaction() as session:
                return _decide_batch(session, items, deliveries, max_deliveries, also_transient)
        except (*TRANSIENT, *also_transient):
            raise
        except Exception as exc:
            # A concurrent delivery committed first (IntegrityError), or a write failed: nothing of the
            # batch was kept, and one at a time each application meets its own outcome.
            log.warning(
                "screening a batch of %d failed (%s); one at a time instead", len(items), type(exc).__name__
            )
            # This delivery is counted already: counting it again would dead-letter a killer one death early.
            return _one_at_a_time(db, items, max_deliveries, also_transient, deliveries)
    except TRANSIENT as exc:
        if connection_lost(exc):
            give_back_deliveries(db, list(deliveries))
        raise


def _one_at_a_time(
    db: Database,
    items: Sequence[tuple[str, str]],
    max_deliveries: int,
    also_transient: tuple[type[Exception], ...],
    counted: dict[str, int] | None = None,
) -> list[ScreeningOutcome]:
    counted = counted or {}
    return [
        screen_application(db, a, m, max_deliveries, also_transient, counted=counted.get(a)) for a, m in items
    ]


def _delivered_before(db: Database, application_ids: Sequence[str]) -> bool:
    """Whether a still undecided application of the batch has been delivered already."""
    with db.reading() as session:
        return (
            session.scalar(
                select(Application.id)
                .where(
                    Application.id.in_(application_ids),
                    Application.status.in_(SCREENED_FROM),
                    Application.screening_deliveries > 0,
                )
                .limit(1)
            )
            is not None
        )


def connection_lost(exc: Exception) -> bool:
    """A database that went away under the screening (its connection ended, the pool had none): no
    fault of the application's. Other operational errors (a statement timeout, a limit exceeded) may
    recur for this application every time, so they stay counted and end in review, not in a loop."""
    if isinstance(exc, InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def give_back_deliveries(db: Database, application_ids: Sequence[str]) -> None:
    """Uncount a delivery of each still undecided application: its screening lost its database (the
    task retries it) and lived to say so, unlike a message that kills its worker, which is what the
    count is for. Without this, a few database restarts would dead-letter a healthy application. Best
    effort: a database still away keeps the count, which only brings review nearer."""
    try:
        with db.transaction() as session:
            session.execute(
                update(Application)
                .where(
                    Application.id.in_(application_ids),
                    Application.status.in_(SCREENED_FROM),
                    Application.screening_deliveries > 0,
                )
                .values(screening_deliveries=Application.screening_deliveries - 1)
                .execution_options(synchronize_session=False)
            )
    except TRANSIENT as exc:
        log.warning(
            "%d deliveries stay counted: the database is away (%s)", len(application_ids), type(exc).__name__
        )


def count_deliveries(db: Database, application_ids: Sequence[str]) -> dict[str, int]:
    """Count a delivery of each still undecided application, in one transaction of its own."""
    with db.transaction() as session:
        result = session.execute(
            update(Application)
            .where(Application.id.in_(application_ids), Application.status.in_(SCREENED_FROM))
            .values(screening_deliveries=Application.screening_deliveries + 1)
            .returning(Application.id, Application.screening_deliveries)
            .execution_options(synchronize_session=False)
        )
        return {application_id: int(n) for application_id, n in result}


def _decide_batch(
    session: Session,
    items: Sequence[tuple[str, str]],
    deliveries: dict[str, int],
    max_deliveries: int,
    also_transient: tuple[type[Exception], ...],
) -> list[ScreeningOutcome]:
    ids = sorted(deliveries)
    processed = set(
        session.scalars(
            select(ProcessedMessage.message_id).where(
                ProcessedMessage.consumer == CONSUMER,
                ProcessedMessage.message_id.in_([message_id for _, message_id in items]),
            )
        )
    )
    # Locked in id order, as every batch locks them, so two batches sharing applications cannot deadlock.
    applications = {
        a.id: a
        for a in session.scalars(
            select(Application).where(Application.id.in_(ids)).order_by(Application.id).with_for_update()
        )
    }
    trials = {
        t.trial_id: t
        for t in session.scalars(
            select(Trial)
            .where(Trial.trial_id.in_({a.trial_id for a in applications.values()}))
            .order_by(Trial.trial_id)
            .with_for_update(read=True)
        )
    }
    preload_counted(session, ids)
    causes = requests_of(session, [message_id for _, message_id in items])
    outcomes = []
    for application_id, message_id in items:
        application = applications.get(application_id)
        if application is None or message_id in processed:
            outcomes.append(ScreeningOutcome(application_id, "duplicate"))
            continue
        trial = trials[application.trial_id]
        with correlated(causes.get(message_id)):  # its audit entries and events lead back to the request
            outcome = _decide_in_batch(
                session,
                application,
                message_id,
                trial,
                deliveries[application_id],
                max_deliveries,
                also_transient,
            )
            log.info("screening of %s in a batch: %s", application_id, outcome.status)  # with its request id
        outcomes.append(outcome)
    return outcomes


def _decide_in_batch(
    session: Session,
    application: Application,
    message_id: str,
    trial: Trial,
    deliveries: int,
    max_deliveries: int,
    also_transient: tuple[type[Exception], ...],
) -> ScreeningOutcome:
    if not transitions.allows(application.status, Action.SCREEN):
        return ScreeningOutcome(application.id, "duplicate")
    if deliveries > max_deliveries:
        return _give_up(session, application, message_id, trial, deliveries)
    try:
        evaluation = _evaluate(session, application, trial)
    except (*TRANSIENT, *also_transient):
        raise
    except Exception as exc:
        # Evaluating writes nothing, so the batch's transaction is whole: set this one aside in it.
        note = _failure_note(application.id, exc)
        return _dead_letter(session, application, message_id, trial.current_criteria_version, note)
    return _decided(session, application, message_id, trial, evaluation)
