"""Screening again after a protocol amendment: the new criteria version, then the trial's open
applications in batches.

Corrected observations do not come through here: corrections.py sends the application back
to `submitted` and the ordinary screening task decides it again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, insert, select, tuple_
from sqlalchemy.orm import Session

from models import Application, Event, ProcessedMessage, Screening, Trial
from models.base import utcnow
from models.db import Database
from models.sealing import keyring_of
from services.applications import transitions
from services.applications.results import sealed
from services.applications.screening import SERVICE_ACTOR
from services.applications.transitions import Action
from services.eligibility import CompiledCriteria
from services.events.outbox import republish
from services.reporting.counts import Changes, preload_counted
from services.trials.criteria import compiled_version

log = logging.getLogger(__name__)

CONSUMER = "rescreening"
# Statuses an amendment re-screens (services.applications.transitions says which, and why).
RESCREENED = transitions.allowed_from(Action.RESCREEN)
BATCH_SIZE = 500


@dataclass
class RescreenTally:
    screened: int = 0
    changed: int = 0
    finished: bool = False


def rescreen_trial(
    db: Database,
    trial_id: str,
    version: int,
    message_id: str,
    batch_size: int = BATCH_SIZE,
    deadline: float | None = None,
) -> RescreenTally:
    """Screen every open application decided under an older version, one transaction per batch.

    A redelivered message resumes where the last one stopped: each batch only takes applications
    still below `version`, so nothing is screened twice and a crash loses at most one batch's work.
    Past `deadline` (time.monotonic) it returns unfinished, so the caller can continue in a new task
    before a time limit stops it.
    """
    tally = RescreenTally()
    after = ""  # the last application of the last batch: each batch starts past it, not at the start
    while deadline is None or time.monotonic() < deadline:
        with db.transaction() as session:
            if session.get(ProcessedMessage, (CONSUMER, message_id)) is not None:
                tally.finished = True
                return tally
            current = session.scalar(
                select(Trial.current_criteria_version)
                .where(Trial.trial_id == trial_id)
                .with_for_update(read=True)
            )
            # A newer amendment has committed: its own message re-screens under the newer version, and
            # screening under this one now would only move applicants to a superseded decision.
            superseded = current is not None and current > version
            batch = [] if superseded else _due(session, trial_id, version, batch_size, after)
            if not batch:
                session.add(ProcessedMessage(consumer=CONSUMER, message_id=message_id))
                tally.finished = True
                return tally
            compiled = compiled_version(session, trial_id, version)
            tally.changed += _rescreen(session, compiled, version, batch)
            tally.screened += len(batch)
            after = batch[-1].id
        log.info("re-screened %d applications of %s under version %d", tally.screened, trial_id, version)
    return tally


def _due(session: Session, trial_id: str, version: int, limit: int, after: str) -> list[Application]:
    """The next applications still below `version`, in id order from past `after`: a walk along the
    primary key, where finding them from the start again would read every one already screened."""
    return list(
        session.scalars(
            select(Application)
            .where(
                Application.id > after,
                Application.trial_id == trial_id,
                Application.status.in_(RESCREENED),
                Application.criteria_version < version,
            )
            .order_by(Application.id)
            .limit(limit)
            .with_for_update()
        )
    )


def _rescreen(session: Session, compiled: CompiledCriteria, version: int, batch: list[Application]) -> int:
    """Record a new screening round for each application; returns how many decisions changed."""
    now = utcnow()
    evaluations = [compiled.evaluate(a.observations, a.submitted_at.date()) for a in batch]
    keyring = keyring_of(session.get_bind().dialect)
    # A Core insert: the mapper's sealing hook does not run, so each value is sealed for its row here.
    session.execute(
        insert(Screening),
        [
            {
                "application_id": a.id,
                "round": a.screening_round + 1,
                "criteria_version": version,
                "decision": e.decision,
                "decided_at": now,
                "results": sealed(keyring, a.id, a.screening_round + 1, e),
            }
            for a, e in zip(batch, evaluations, strict=True)
        ],
    )
    automated = _automated_decisions(session, batch)
    preload_counted(session, [a.id for a in batch])
    changes = Changes()
    changed = sum(
        transitions.rescreen(
            session,
            application,
            evaluation,
            version,
            automated=automated.get(application.id),
            at=now,
            by=SERVICE_ACTOR,
            changes=changes,
        )
        for application, evaluation in zip(batch, evaluations, strict=True)
    )
    changes.write(session)
    return changed


def _automated_decisions(session: Session, batch: list[Application]) -> dict[str, str]:
    """Each application's decision in its latest screening, before any investigator's review."""
    rows = session.execute(
        select(Screening.application_id, Screening.decision).where(
            tuple_(Screening.application_id, Screening.round).in_([(a.id, a.screening_round) for a in batch])
        )
    ).all()
    return {application_id: decision for application_id, decision in rows}


def republish_unfinished_amendments(session: Session, older_than: datetime) -> list[str]:
    """Publish again each amendment whose re-screening never finished (its message was lost).

    An amendment is unfinished while its trial still has open applications below the current version
    and no consumer has recorded its message as processed.
    """
    behind = (
        select(Application.trial_id)
        .join(Trial, Trial.trial_id == Application.trial_id)
        .where(
            Application.status.in_(RESCREENED), Application.criteria_version < Trial.current_criteria_version
        )
        .distinct()
    )
    latest = (
        select(func.max(Event.seq))
        .where(Event.type == "trial.criteria_changed", Event.trial_id.in_(behind))
        .group_by(Event.trial_id)
    )
    processed = select(ProcessedMessage.message_id).where(ProcessedMessage.consumer == CONSUMER)
    return republish(
        session, and_(Event.seq.in_(latest), Event.id.not_in(processed)), older_than, Event.trial_id
    )
