"""Dead-lettered screenings: applications whose screening task kept killing its worker, or failed.

Screening (`screening.run_batch`, `screening.run`) counts every delivery before it evaluates
(services.applications.screening). Past `ACCRUAL_SCREENING_MAX_DELIVERIES` it stops evaluating, sends
the application to `needs_review` and stamps `dead_lettered_at`, so a poison message cannot be
redelivered forever. A screening that raises anything but a transient database error (a trial without
criteria, a broken criteria version, a bug) is set aside the same way at once, with a note naming the
cause. An operator lists them here and, once the cause is fixed (a criteria rule, a worker's memory
limit), sends them back to screening; the retry is the same path as a corrected application: a new
screening round and an `application.updated` event that the relay hands to a worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from models import Application
from services.applications import transitions
from services.applications.transitions import Action

RETRY_REASON = "screening retried by an operator after it was dead-lettered"


class DeadLetterError(Exception):
    """The application is not a dead-lettered screening waiting in review."""


@dataclass(frozen=True)
class DeadLetter:
    application_id: str
    trial_id: str
    site_id: str
    deliveries: int
    dead_lettered_at: datetime


def _waiting() -> ColumnElement[bool]:
    """Dead-lettered and still in review: a coordinator's review decision settles it as well."""
    return and_(
        Application.dead_lettered_at.is_not(None),
        Application.status.in_(transitions.allowed_from(Action.RETRY)),
    )


def list_dead_letters(session: Session, limit: int = 1000) -> list[DeadLetter]:
    """The dead-lettered applications still waiting, oldest first; ids and counts, no clinical data."""
    rows = session.execute(
        select(
            Application.id,
            Application.trial_id,
            Application.site_id,
            Application.screening_deliveries,
            Application.dead_lettered_at,
        )
        .where(_waiting())
        .order_by(Application.dead_lettered_at, Application.id)
        .limit(limit)
    ).all()
    return [DeadLetter(a, t, s, d, at) for a, t, s, d, at in rows if at is not None]


def retry_screening(session: Session, application_ids: Sequence[str], actor: str) -> list[str]:
    """Send dead-lettered applications back to screening; raises before changing anything if one is not."""
    applications = session.scalars(
        select(Application)
        .where(Application.id.in_(application_ids), _waiting())
        .order_by(Application.id)
        .with_for_update()
    ).all()
    found = {a.id for a in applications}
    missing = [i for i in application_ids if i not in found]
    if missing:
        raise DeadLetterError("not a dead-lettered application waiting in review: " + ", ".join(missing))
    for application in applications:
        transitions.reopen(session, application, Action.RETRY, by=actor, reason=RETRY_REASON)
    return [a.id for a in applications]
