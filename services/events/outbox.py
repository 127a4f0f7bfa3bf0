"""The transactional outbox: events written with their change, claimed by relays, marked when published."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from models import Application, ApplicationStatus, Event, EventStatus
from models.base import utcnow
from services.events.catalogue import (
    ApplicationEvent,
    ApplicationSubmitted,
    ApplicationUpdated,
    EventPayload,
    payloads,
)
from services.events.wakeup import OUTBOX, wake
from services.ids import new_id
from services.provenance import request_id

LEASE = timedelta(seconds=60)
# Events that ask for an application to be screened: its submission, and corrected observations.
SCREENING_REQUESTS = (ApplicationSubmitted.event_type, ApplicationUpdated.event_type)
MAX_BACKOFF = timedelta(minutes=5)


def add_event(
    session: Session,
    payload: EventPayload,
    *,
    trial_id: str | None,
    site_id: str | None = None,
    application_id: str | None = None,
) -> Event:
    """Record an event in the caller's transaction; it carries ids and statuses, never observations.

    The payload's class names the type (services.events.catalogue). Its consumers (screening, counts,
    e-mail, webhooks) are the relay's business: nothing else is written here.
    """
    event = Event(**event_row(payload, trial_id=trial_id, site_id=site_id, application_id=application_id))
    session.add(event)
    wake(session, OUTBOX)
    return event


def event_row(
    payload: EventPayload, *, trial_id: str | None, site_id: str | None, application_id: str | None
) -> dict[str, Any]:
    """The outbox row of a new event, for add_event or for Core code writing it (which then calls
    `wake(session, OUTBOX)`, as add_event does)."""
    if type(payload) not in payloads():
        raise TypeError(f"{type(payload).__name__} is not an event payload of the catalogue")
    if isinstance(payload, ApplicationEvent) != (application_id is not None):
        # The feed and webhooks keep an applicant's facts from sponsors by the event's application_id.
        raise ValueError(f"{payload.event_type} events name an application, and only they do")
    now = utcnow()
    return {
        "id": new_id("evt"),
        "type": payload.event_type,
        "trial_id": trial_id,
        "site_id": site_id,
        "application_id": application_id,
        "data": payload.stored(),
        "status": EventStatus.PENDING.value,
        "attempts": 0,
        "occurred_at": now,
        "next_attempt_at": now,
        "request_id": request_id(),
    }


def requests_of(session: Session, event_ids: Sequence[str]) -> dict[str, str | None]:
    """The request that caused each of these events (services.provenance), for their consumers to act
    under; an id that is not an event (a message sent by hand) is absent."""
    rows = session.execute(select(Event.id, Event.request_id).where(Event.id.in_(event_ids)))
    return {event_id: correlation for event_id, correlation in rows}


def claim_batch(session: Session, holder: str, limit: int = 100, lease: timedelta = LEASE) -> list[Event]:
    """Lease up to `limit` due events, oldest first, at most the oldest pending one per application.

    On PostgreSQL rows another relay has locked are skipped (FOR UPDATE SKIP LOCKED); on SQLite the
    transaction already holds the write lock (BEGIN IMMEDIATE), so relays take turns.
    """
    now = utcnow()
    events = list(session.scalars(due_events(now, limit)))
    for event in events:
        event.claimed_by = holder
        event.lease_until = now + lease
    return events


def due_events(now: datetime, limit: int) -> Select[Event]:
    """The claim's query: pending events due at `now`, earliest due first (then oldest), none behind an
    older pending event of its application; rows another relay holds are skipped (PostgreSQL).

    Ordered as the index ix_events_due (status, next_attempt_at, seq) is, so the claim reads the first
    `limit` due rows off the index however many events wait and however many published ones precede
    them: ordered by seq alone, both databases scan the table by seq instead, past every published row
    (tests/integration/test_outbox_retention.py checks the plans)."""
    older = aliased(Event)
    earlier_pending = exists().where(
        older.application_id == Event.application_id,
        older.status == EventStatus.PENDING.value,
        older.seq < Event.seq,
    )
    return (
        select(Event)
        .where(
            Event.status == EventStatus.PENDING.value,
            Event.next_attempt_at <= now,
            (Event.lease_until.is_(None)) | (Event.lease_until < now),
            (Event.application_id.is_(None)) | ~earlier_pending,
        )
        .order_by(Event.next_attempt_at, Event.seq)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Event)
    )


def mark_published(session: Session, event_ids: Sequence[str], holder: str) -> list[str]:
    """Stamp events sent and return the ids stamped: only the relay holding the lease may stamp, so a
    slow relay cannot stamp a re-claim, and what runs in the stamping transaction runs once per stamp."""
    if not event_ids:
        return []
    result = session.execute(
        update(Event)
        .where(Event.id.in_(event_ids), Event.claimed_by == holder, Event.status == EventStatus.PENDING.value)
        .values(status=EventStatus.PUBLISHED.value, published_at=utcnow(), lease_until=None, last_error=None)
        .returning(Event.id)
    )
    return list(result.scalars())


def backoff(attempts: int) -> timedelta:
    """Growing delay before the next try to publish: 1 s, 2 s, 4 s ... capped at five minutes."""
    return min(timedelta(seconds=2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def mark_failed(session: Session, event_id: str, holder: str, error: str, max_attempts: int) -> bool:
    """Release a claimed event for a later try; after `max_attempts` it is dead and reported. True when
    this call stamped it dead (once per death, like `mark_published`'s stamp)."""
    event = session.scalar(select(Event).where(Event.id == event_id, Event.claimed_by == holder))
    if event is None or event.status != EventStatus.PENDING.value:
        return False
    event.attempts += 1
    event.last_error = error[:500]
    event.lease_until = None
    event.next_attempt_at = utcnow() + backoff(event.attempts)
    if event.attempts >= max_attempts:
        event.status = EventStatus.DEAD.value
        return True
    return False


def release_unsent(session: Session, event_ids: Sequence[str], holder: str, retry_in: timedelta) -> None:
    """Give back claimed events that could not be sent for a reason not theirs (the broker was away):
    no attempt is counted, and they are due again after `retry_in`."""
    session.execute(
        update(Event)
        .where(Event.id.in_(event_ids), Event.claimed_by == holder, Event.status == EventStatus.PENDING.value)
        .values(
            lease_until=None, next_attempt_at=utcnow() + retry_in, last_error="the broker was unreachable"
        )
    )


def republish_undecided(session: Session, older_than: datetime, limit: int | None = 500) -> list[str]:
    """Publish again the submission event of applications still undecided since `older_than`; their ids.

    The safety net for a message lost by the broker or a killed worker: consumers are idempotent, so a
    duplicate costs nothing, while a lost message would leave an applicant undecided forever. The sweep
    takes `limit` at a time; when a worker has died, every one in flight at once (`limit` None): the
    broker's queue and the workers' hands, which a healthy pipeline keeps short.
    """
    stuck = select(Application.id).where(
        Application.status == ApplicationStatus.SUBMITTED.value, Application.submitted_at < older_than
    )
    latest_submission = (
        select(func.max(Event.seq))
        .where(Event.application_id.in_(stuck), Event.type.in_(SCREENING_REQUESTS))
        .group_by(Event.application_id)
        .limit(limit)
    )
    return republish(session, Event.seq.in_(latest_submission), older_than, Event.application_id)


def republish(
    session: Session,
    which: ColumnElement[bool],
    older_than: datetime,
    returning: InstrumentedAttribute[str | None],
) -> list[str]:
    """Put the events `which` selects back in the outbox if they left before `older_than` or died.

    Returns the `returning` column of each event put back.
    """
    result = session.execute(
        update(Event)
        .where(
            which,
            or_(
                and_(Event.status == EventStatus.PUBLISHED.value, Event.published_at < older_than),
                Event.status == EventStatus.DEAD.value,
            ),
        )
        .values(status=EventStatus.PENDING.value, next_attempt_at=utcnow(), claimed_by=None, lease_until=None)
        .returning(returning)
    )
    put_back = [row[0] for row in result if row[0] is not None]
    if put_back:
        wake(session, OUTBOX)
    return put_back
