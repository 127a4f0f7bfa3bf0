"""The outbox relay: claim due events, publish each to its consumer's task, stamp the outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from models.db import Database
from services.events.outbox import LEASE, claim_batch, mark_failed, mark_published, release_unsent

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
    data: dict[str, Any]


def _screen_application(event: Claimed) -> list[Any]:
    return [event.application_id, event.id]


def _rescreen_trial(event: Claimed) -> list[Any]:
    return [event.trial_id, event.data["version"], event.id]


def _count_application(event: Claimed) -> list[Any]:
    return [event.application_id]


def _event_id(event: Claimed) -> list[Any]:
    return [event.id]


Consumer = tuple[str, str, Callable[[Claimed], list[Any]]]
SCREEN: Consumer = ("screening.run", "screening", _screen_application)
COUNT: Consumer = ("reporting.count", "default", _count_application)
MAIL: Consumer = ("mail.compose", "notifications", _event_id)

# Event type -> (task, queue, task arguments) of each consumer; events no task consumes are stamped
# published at once. Arguments are ids and versions only: no clinical data ever sits in the broker.
CONSUMERS: dict[str, list[Consumer]] = {
    "application.submitted": [SCREEN, COUNT],
    "application.updated": [SCREEN, COUNT],
    "application.screened": [COUNT, MAIL],
    "application.reviewed": [COUNT],
    "application.enrolled": [COUNT],
    "application.withdrawn": [COUNT],
    "trial.criteria_changed": [("screening.rescreen_trial", "screening", _rescreen_trial)],
    "trial.status_changed": [MAIL],
    "site.status_changed": [MAIL],
}


def consumers(app: Celery, event_type: str) -> list[Consumer]:
    """The event's consumers; e-mail's only when e-mail is on, so a task that would do nothing is
    never queued ahead of webhook deliveries."""
    mail_on = app.conf.accrual_settings.mail_enabled
    return [c for c in CONSUMERS.get(event_type, []) if mail_on or c is not MAIL]


def relay_once(
    db: Database, app: Celery, holder: str, batch: int, max_attempts: int, lease: timedelta = LEASE
) -> int:
    """Publish one batch and return how many events it handled; no transaction is open while publishing."""
    with db.transaction() as session:
        claimed = [
            Claimed(e.id, e.type, e.trial_id, e.application_id, dict(e.data))
            for e in claim_batch(session, holder, batch, lease)
        ]
    if not claimed:
        return 0
    sent, failed, unreachable = _publish(app, claimed)
    with db.transaction() as session:
        mark_published(session, sent, holder)
        for event_id, error in failed.items():
            mark_failed(session, event_id, holder, error, max_attempts)
        if unreachable:
            release_unsent(session, unreachable, holder, BROKER_RETRY)
    return len(claimed)


def _publish(app: Celery, claimed: list[Claimed]) -> tuple[list[str], dict[str, str], list[str]]:
    """Send each event to its consumer. Returns the ids sent; per failed id, why it failed; and the ids
    not sent because the broker could not be reached, which is no fault of theirs."""
    sent: list[str] = []
    failed: dict[str, str] = {}
    try:
        with app.producer_or_acquire() as producer:
            for event in claimed:
                try:
                    for task, queue, arguments in consumers(app, event.type):
                        # One task id per (event, consumer); a retry after a partial fan-out sends the
                        # first consumers again, which their idempotency absorbs.
                        app.send_task(
                            task,
                            args=arguments(event),
                            task_id=f"{event.id}.{task}",
                            queue=queue,
                            producer=producer,
                        )
                    sent.append(event.id)
                except BROKER_AWAY:
                    raise
                except Exception as exc:
                    failed[event.id] = f"{type(exc).__name__}: {exc}"
    except BROKER_AWAY as exc:
        # The broker is away: the events are fine. Counting this against them would push them into
        # ever longer backoff, and a long outage would kill them; try them again shortly instead.
        unreachable = [e.id for e in claimed if e.id not in sent and e.id not in failed]
        log.warning("broker unreachable (%s); %d events wait for it", type(exc).__name__, len(unreachable))
        return sent, failed, unreachable
    if failed:
        reason = next(iter(failed.values()))[:120]
        log.warning("publishing %d events failed (%s); they will be retried", len(failed), reason)
    return sent, failed, []
