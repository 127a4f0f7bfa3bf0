"""The outbox relay: claim due events, hand each to its consumers, stamp the outcome.

Every consumer of events is declared in one table, CONSUMERS. Three kinds:
- a Task is a Celery task, sent to the broker before its event is stamped published. A relay that dies
  between the two leaves the event to be claimed and sent again, so tasks are idempotent;
- a Batched task is one Celery task for several events of a pass (screening: up to
  ACCRUAL_SCREENING_BATCH_SIZE applications per message), sent and stamped like a Task;
- a Recorder writes rows in the transaction that stamps its events published, so it runs exactly once
  per stamp, however often a dying relay sent the event's tasks. The webhook fan-out is one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy.orm import Session

from config import queues
from models.db import Database
from services.events.catalogue import (
    AllocationUnblinded,
    ApplicationAllocated,
    ApplicationEnrolled,
    ApplicationReviewed,
    ApplicationScreened,
    ApplicationSubmitted,
    ApplicationUpdated,
    ApplicationWithdrawn,
    DoseEscalationDecided,
    SiteStatusChanged,
    TrialCriteriaChanged,
    TrialStatusChanged,
    TrialTargetReached,
    WebhookDeliveryFailed,
    WebhookDisabled,
)
from services.events.outbox import LEASE, claim_batch, mark_failed, mark_published, release_unsent
from services.notifications.fanout import fan_out

log = logging.getLogger(__name__)
# Connection-level failures: the broker did not answer, whatever the event.
BROKER_AWAY = (KombuOperationalError, ConnectionError, OSError, TimeoutError)
BROKER_RETRY = timedelta(seconds=2)


@dataclass(frozen=True)
class Claimed:
    id: str
    type: str
    trial_id: str | None
    application_id: str | None
    occurred_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class Task:
    """A Celery task per event: its name, queue, and arguments (ids and versions only: no clinical data
    ever sits in the broker)."""

    name: str
    queue: str
    arguments: Callable[[Claimed], list[Any]]


@dataclass(frozen=True)
class Recorder:
    """Rows written for a batch of events in the transaction that stamps them published."""

    name: str
    record: Callable[[Session, Sequence[Claimed]], object]


@dataclass(frozen=True)
class Batched:
    """One Celery task for up to `size` events of a relay pass: its argument is the list of each
    event's `item` (ids only, as for a Task)."""

    name: str
    queue: str
    item: Callable[[Claimed], list[Any]]


Consumer = Task | Batched | Recorder


@dataclass(frozen=True)
class Message:
    """One Celery task to send, and the events it carries."""

    name: str
    queue: str
    args: list[Any]
    task_id: str
    events: tuple[str, ...]


def _screen_application(event: Claimed) -> list[Any]:
    return [event.application_id, event.id]


def _rescreen_trial(event: Claimed) -> list[Any]:
    return [event.trial_id, event.data["version"], event.id]


def _event_id(event: Claimed) -> list[Any]:
    return [event.id]


SCREEN = Batched("screening.run_batch", queues.SCREENING, _screen_application)
RESCREEN = Task("screening.rescreen_trial", queues.SCREENING, _rescreen_trial)
MAIL = Task("mail.compose", queues.NOTIFICATIONS, _event_id)
# Every event type may be named by a webhook subscription, so every type is fanned out.
WEBHOOKS = Recorder("webhooks.fan_out", fan_out)

# Event type -> its consumers, in the order they are handed the event. An event of a type not listed
# here (none is written today) is stamped published at once.
CONSUMERS: dict[str, list[Consumer]] = {
    ApplicationSubmitted.event_type: [SCREEN, WEBHOOKS],
    ApplicationUpdated.event_type: [SCREEN, WEBHOOKS],
    ApplicationScreened.event_type: [MAIL, WEBHOOKS],
    ApplicationReviewed.event_type: [WEBHOOKS],
    ApplicationEnrolled.event_type: [WEBHOOKS],
    ApplicationWithdrawn.event_type: [WEBHOOKS],
    TrialStatusChanged.event_type: [MAIL, WEBHOOKS],
    TrialTargetReached.event_type: [WEBHOOKS],
    TrialCriteriaChanged.event_type: [RESCREEN, WEBHOOKS],
    SiteStatusChanged.event_type: [MAIL, WEBHOOKS],
    WebhookDisabled.event_type: [WEBHOOKS],
    DoseEscalationDecided.event_type: [WEBHOOKS],
    ApplicationAllocated.event_type: [WEBHOOKS],
    AllocationUnblinded.event_type: [WEBHOOKS],
    WebhookDeliveryFailed.event_type: [MAIL, WEBHOOKS],
}


def consumers(app: Celery, event_type: str) -> list[Consumer]:
    """The event's consumers; e-mail's only when e-mail is on, so a task that would do nothing is
    never queued ahead of webhook deliveries."""
    mail_on = app.conf.accrual_settings.mail_enabled
    return [c for c in CONSUMERS.get(event_type, []) if mail_on or c is not MAIL]


def _messages(app: Celery, claimed: list[Claimed]) -> list[Message]:
    """The Celery tasks for a pass's events: a Task's per event, a Batched task's per chunk of events.
    One task id per (event, task), a batch named by its first event: a retry after a partial send sends
    some tasks again, which their idempotency absorbs."""
    messages: list[Message] = []
    batched: dict[Batched, list[Claimed]] = {}
    for event in claimed:
        for consumer in consumers(app, event.type):
            if isinstance(consumer, Task):
                task_id = f"{event.id}.{consumer.name}"
                args = consumer.arguments(event)
                messages.append(Message(consumer.name, consumer.queue, args, task_id, (event.id,)))
            elif isinstance(consumer, Batched):
                batched.setdefault(consumer, []).append(event)
    size = app.conf.accrual_settings.screening_batch_size
    for consumer, events in batched.items():
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            items = [consumer.item(event) for event in chunk]
            task_id = f"{chunk[0].id}.{consumer.name}"
            messages.append(
                Message(consumer.name, consumer.queue, [items], task_id, tuple(e.id for e in chunk))
            )
    return messages


def relay_once(
    db: Database, app: Celery, holder: str, batch: int, max_attempts: int, lease: timedelta = LEASE
) -> int:
    """Publish one batch and return how many events it handled; no transaction is open while publishing."""
    with db.transaction() as session:
        claimed = [
            Claimed(e.id, e.type, e.trial_id, e.application_id, e.occurred_at, dict(e.data))
            for e in claim_batch(session, holder, batch, lease)
        ]
    if not claimed:
        return 0
    sent, failed, unreachable = _publish(app, claimed)
    with db.transaction() as session:
        stamped = set(mark_published(session, sent, holder))
        # An event whose tasks could not be published for good is still owed its recorded consumers
        # (webhook deliveries need no broker); republished later, it records nothing twice.
        stamped |= {i for i, error in failed.items() if mark_failed(session, i, holder, error, max_attempts)}
        _record(session, app, [event for event in claimed if event.id in stamped])
        if unreachable:
            release_unsent(session, unreachable, holder, BROKER_RETRY)
    return len(claimed)


def _record(session: Session, app: Celery, stamped: list[Claimed]) -> None:
    """Run the recorders of the events this relay has just stamped published or dead, in the stamping
    transaction: an event is stamped once per time it is relayed, so it is recorded once too."""
    batches: dict[Recorder, list[Claimed]] = {}
    for event in stamped:
        for consumer in consumers(app, event.type):
            if isinstance(consumer, Recorder):
                batches.setdefault(consumer, []).append(event)
    for recorder, events in batches.items():
        recorder.record(session, events)


def _publish(app: Celery, claimed: list[Claimed]) -> tuple[list[str], dict[str, str], list[str]]:
    """Send each event to its tasks. Returns the ids sent; per failed id, why it failed; and the ids
    not sent because the broker could not be reached, which is no fault of theirs."""
    messages = _messages(app, claimed)
    failed: dict[str, str] = {}
    tried = 0
    try:
        with app.producer_or_acquire() as producer:
            for tried, message in enumerate(messages):  # noqa: B007 - read when the broker goes away
                try:
                    app.send_task(
                        message.name,
                        args=message.args,
                        task_id=message.task_id,
                        queue=message.queue,
                        producer=producer,
                    )
                except BROKER_AWAY:
                    raise
                except Exception as exc:
                    failed.update(dict.fromkeys(message.events, f"{type(exc).__name__}: {exc}"))
    except BROKER_AWAY as exc:
        unsent = {event_id for message in messages[tried:] for event_id in message.events}
        # The broker is away: the events are fine. Counting this against them would push them into
        # ever longer backoff, and a long outage would kill them; try them again shortly instead.
        unreachable = [e.id for e in claimed if e.id in unsent and e.id not in failed]
        log.warning("broker unreachable (%s); %d events wait for it", type(exc).__name__, len(unreachable))
        sent = [e.id for e in claimed if e.id not in unsent and e.id not in failed]
        return sent, failed, unreachable
    sent = [e.id for e in claimed if e.id not in failed]
    if failed:
        reason = next(iter(failed.values()))[:120]
        log.warning("publishing %d events failed (%s); they will be retried", len(failed), reason)
    return sent, failed, []
