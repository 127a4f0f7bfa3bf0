"""Event retention: published events older than the retention period leave the outbox, once nothing
needs them, and the feed says so to a reader whose cursor points before what was purged.

An event is still needed while a webhook delivery or an e-mail of it is pending (a delivery rebuilds
its body from the event at every attempt), while it is the screening request of an application still
undecided (the sweep publishes that one again), and while it is its trial's latest criteria change
(the sweep republishes an unfinished amendment's). Those stay whatever their age; the table is bounded
by the retention period's events plus them.

The purge records the feed position (txid, seq) of the newest event it deleted, in the transaction
that deletes it. A cursor at or after that position has missed nothing; one before it may have, so the
feed answers it 410 `cursor-expired` rather than skip events unseen.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, exists, func, not_, select, update
from sqlalchemy.orm import Session

from models import Application, ApplicationStatus, EmailMessage, Event, EventStatus, WebhookDelivery
from models.base import utcnow
from models.event import EventRetention
from services.errors import CursorExpired
from services.events.catalogue import TrialCriteriaChanged
from services.events.outbox import SCREENING_REQUESTS

PURGE_BATCH = 1000
PENDING = "pending"  # the status of a webhook delivery or an e-mail still to be sent


def _still_needed() -> list[ColumnElement[bool]]:
    """Conditions under which a published event must stay, whatever its age."""
    delivery_pending = exists().where(WebhookDelivery.event_id == Event.id, WebhookDelivery.status == PENDING)
    email_pending = exists().where(EmailMessage.event_id == Event.id, EmailMessage.status == PENDING)
    undecided = exists().where(
        Application.id == Event.application_id, Application.status == ApplicationStatus.SUBMITTED.value
    )
    latest_amendment = (
        select(func.max(Event.seq))
        .where(Event.type == TrialCriteriaChanged.event_type)
        .group_by(Event.trial_id)
    )
    return [
        delivery_pending,
        email_pending,
        and_(Event.type.in_(SCREENING_REQUESTS), undecided),
        Event.seq.in_(latest_amendment),
    ]


def purge_batch(session: Session, published_before: datetime, limit: int = PURGE_BATCH) -> int:
    """Delete up to `limit` events published before `published_before` that nothing needs, oldest
    first, and move the purge's position past them; how many were deleted."""
    purgeable = (
        select(Event.seq)
        .where(
            Event.status == EventStatus.PUBLISHED.value,
            Event.published_at < published_before,
            *(not_(condition) for condition in _still_needed()),
        )
        .order_by(Event.seq)
        .limit(limit)
    )
    deleted = session.execute(delete(Event).where(Event.seq.in_(purgeable)).returning(Event.txid, Event.seq))
    positions = [(int(txid), int(seq)) for txid, seq in deleted]
    if positions:
        _advance(session, max(positions), len(positions))
    return len(positions)


def _advance(session: Session, newest: tuple[int, int], count: int) -> None:
    """Move the purge's position to `newest` if it lies beyond it, in the deleting transaction."""
    row = session.execute(
        select(EventRetention.purged_txid, EventRetention.purged_seq)
        .where(EventRetention.id == 1)
        .with_for_update()
    ).one()
    txid, seq = max((int(row.purged_txid), int(row.purged_seq)), newest)
    session.execute(
        update(EventRetention)
        .where(EventRetention.id == 1)
        .values(
            purged_txid=txid,
            purged_seq=seq,
            purged_count=EventRetention.purged_count + count,
            purged_at=utcnow(),
        )
    )


def purged_through(session: Session) -> tuple[int, int]:
    """The feed position of the newest event purged: (-1, 0), before every event, if none was."""
    row = session.execute(
        select(EventRetention.purged_txid, EventRetention.purged_seq).where(EventRetention.id == 1)
    ).one()
    return int(row.purged_txid), int(row.purged_seq)


def require_within_reach(session: Session, position: tuple[int, int]) -> None:
    """CursorExpired if events after feed `position` were purged: its reader would miss them."""
    if position < purged_through(session):
        raise CursorExpired(
            "events after this cursor are past the retention period (ACCRUAL_EVENT_RETENTION_DAYS) and "
            "were purged: read the feed again without `after`, from the oldest event kept"
        )
