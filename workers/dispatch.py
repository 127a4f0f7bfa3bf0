"""Dispatchers of scheduled sends (webhook deliveries, e-mails): hand due rows to the notifications queue.

The schedule lives in the rows (services.notifications.scheduled_sends); this only claims the due
ones and publishes (id, claim). A row whose task is lost (broker restart, worker killed) becomes due
again when its lease ends, so every message is attempted until it succeeds or its schedule is spent.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery

from config import Settings, queues
from models import EmailMessage, WebhookDelivery
from models.db import Database
from services.notifications.mail import mail_lease
from services.notifications.scheduled_sends import Scheduled, claim_due, release
from services.notifications.webhooks import lease_for

log = logging.getLogger(__name__)
BATCH = 200


def _dispatch(db: Database, app: Celery, model: Scheduled, task: str, lease: timedelta) -> int:
    """Claim the due rows of `model` and publish `task(id, claim)` for each; how many were sent."""
    with db.transaction() as session:
        due = claim_due(session, model, lease, BATCH)
    if not due:
        return 0
    sent: list[str] = []
    try:
        with app.producer_or_acquire() as producer:
            for row_id, claim in due:
                app.send_task(
                    task, args=[row_id, claim], task_id=claim, queue=queues.queue_for(task), producer=producer
                )
                sent.append(row_id)
    except Exception as exc:  # the broker is away: release the rest so the next run takes them
        log.warning("publishing %s tasks failed (%s); they will be retried", task, type(exc).__name__)
        with db.transaction() as session:
            release(session, model, [row_id for row_id, _ in due if row_id not in sent])
    return len(sent)


def dispatch_webhooks(db: Database, app: Celery, settings: Settings) -> int:
    return _dispatch(db, app, WebhookDelivery, "webhooks.deliver", lease_for(settings))


def dispatch_emails(db: Database, app: Celery, settings: Settings) -> int:
    return _dispatch(db, app, EmailMessage, "mail.send", mail_lease(settings))
