"""Which webhook subscriptions an event is owed to: a delivery row each, written by the outbox relay in
the transaction that stamps the event published (workers/relay.py), so each event fans out once."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Trial, WebhookDelivery
from services.catalog import Subscriber, catalog_at
from services.events.wakeup import SENDS, wake
from services.ids import new_id


class Occurred(Protocol):
    """What the fan-out reads of an event."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def trial_id(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime: ...


def _sponsors(session: Session, trial_ids: Collection[str]) -> dict[str, str]:
    if not trial_ids:
        return {}
    rows = session.execute(select(Trial.trial_id, Trial.sponsor).where(Trial.trial_id.in_(trial_ids)))
    return {trial_id: sponsor for trial_id, sponsor in rows if sponsor is not None}


def _same_organisation(subscriber: str, sponsor: str | None) -> bool:
    return sponsor is not None and subscriber.casefold() == sponsor.casefold()


class Subscribed(Protocol):
    @property
    def sponsor(self) -> str | None: ...


def for_admin(subscription: Subscribed) -> bool:
    """An admin's subscription (it has no sponsor) gets every trial's events, their data whole."""
    return subscription.sponsor is None


def _owed(subscription: Subscriber, event: Occurred, sponsor: str | None) -> bool:
    """It wants the type, may see the trial, and existed when the event occurred."""
    sees_trial = subscription.sponsor is None or _same_organisation(subscription.sponsor, sponsor)
    return (
        sees_trial and event.type in subscription.event_types and subscription.created_at <= event.occurred_at
    )


def _fanned_out(session: Session, events: Sequence[Occurred]) -> set[tuple[str, str]]:
    """(subscription, event) pairs that have a delivery already: an event the sweep or an amendment
    put back in the outbox is relayed again, and fans out to nobody twice."""
    rows = session.execute(
        select(WebhookDelivery.subscription_id, WebhookDelivery.event_id).where(
            WebhookDelivery.event_id.in_([event.id for event in events])
        )
    )
    return {(subscription_id, event_id) for subscription_id, event_id in rows}


def fan_out(session: Session, events: Sequence[Occurred]) -> int:
    """A pending delivery of each event for every subscription owed it and live now (neither deleted nor
    disabled); how many were written."""
    if not events:
        return 0
    live = catalog_at(session).subscribers(session)  # this process's copies, unless one changed
    types = {event.type for event in events}
    subscriptions = [s for s in live if types & s.event_types]
    if not subscriptions:
        return 0
    trials = {e.trial_id for e in events if e.trial_id is not None}
    sponsors = _sponsors(session, trials) if not all(map(for_admin, subscriptions)) else {}
    done = _fanned_out(session, events)
    written = 0
    for event in events:
        sponsor = sponsors.get(event.trial_id) if event.trial_id is not None else None
        for subscription in subscriptions:
            if (subscription.id, event.id) in done or not _owed(subscription, event, sponsor):
                continue
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
            written += 1
    if written:
        wake(session, SENDS)
    return written
