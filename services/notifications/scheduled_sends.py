"""Outgoing messages sent on a schedule kept in their own rows (webhook deliveries, e-mails).

A dispatcher claims due rows under a lease and hands (id, claim) to a task. A task whose claim is no
longer the row's (its lease ran out and another dispatch took over) sends nothing, so re-dispatching
a lost task never doubles an attempt. Long waits live in next_attempt_at, never in broker countdowns,
which Redis may deliver twice once they outlive its visibility timeout.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from models import EmailMessage, WebhookDelivery
from models.base import utcnow
from services.ids import new_id

Scheduled = type[WebhookDelivery] | type[EmailMessage]


def claim_due(session: Session, model: Scheduled, lease: timedelta, limit: int) -> list[tuple[str, str]]:
    """Lease up to `limit` due rows, each under a new claim; rows another dispatcher is claiming are
    skipped (SKIP LOCKED on PostgreSQL; SQLite's write lock serialises dispatchers). (id, claim) pairs."""
    now = utcnow()
    due = session.scalars(
        select(model.id)
        .where(
            model.status == "pending",
            model.next_attempt_at <= now,
            or_(model.lease_until.is_(None), model.lease_until < now),
        )
        .order_by(model.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    claimed = [(row_id, new_id("clm")) for row_id in due]
    for row_id, claim in claimed:
        session.execute(update(model).where(model.id == row_id).values(lease_until=now + lease, claim=claim))
    return claimed


def begin_attempt(row: WebhookDelivery | EmailMessage, lease: timedelta) -> None:
    """The attempt under the row's claim starts now: its lease runs from here, not from the dispatch, so
    a task that waited in a busy queue is not overtaken by a re-dispatch while it sends (which would
    send twice: the first task's record would be refused, its request already made)."""
    row.lease_until = utcnow() + lease


def release(session: Session, model: Scheduled, ids: list[str]) -> None:
    """Give rows whose tasks could not be published back to the next dispatch at once."""
    if ids:
        session.execute(update(model).where(model.id.in_(ids)).values(lease_until=None, claim=None))
