"""Which webhook subscriptions an event is owed to: a delivery row each, in the event's transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Event, Trial, WebhookDelivery, WebhookSubscription
from services.ids import new_id


def _sponsor_of(session: Session, trial_id: str | None) -> str | None:
    if trial_id is None:
        return None
    return session.scalar(select(Trial.sponsor).where(Trial.trial_id == trial_id))


def _same_organisation(subscriber: str, sponsor: str | None) -> bool:
    return sponsor is not None and subscriber.casefold() == sponsor.casefold()


def for_admin(subscription: WebhookSubscription) -> bool:
    """An admin's subscription (it has no sponsor) gets every trial's events, their data whole."""
    return subscription.sponsor is None


def add_deliveries(session: Session, event: Event) -> int:
    """A pending delivery for every live subscription that wants the event and may see its trial."""
    subscriptions = session.scalars(
        select(WebhookSubscription).where(
            WebhookSubscription.deleted_at.is_(None), WebhookSubscription.disabled_at.is_(None)
        )
    ).all()
    wanted = [s for s in subscriptions if event.type in s.event_types]
    if not wanted:
        return 0
    sponsor = _sponsor_of(session, event.trial_id) if any(s.sponsor for s in wanted) else None
    owed = [s for s in wanted if s.sponsor is None or _same_organisation(s.sponsor, sponsor)]
    for subscription in owed:
        session.add(
            WebhookDelivery(
                id=new_id("dlv"),
                subscription_id=subscription.id,
                event_id=event.id,
                event_type=event.type,
                status="pending",
                next_attempt_at=event.occurred_at,
            )
        )
    return len(owed)
