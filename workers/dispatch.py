"""The webhook dispatcher: hand due deliveries to the notifications queue.

The retry schedule lives in the deliveries' rows; this only leases the due ones and publishes their
ids. A delivery whose task is lost (broker restart, worker killed) becomes due again when its lease
ends, so every delivery is attempted until it succeeds or its schedule is spent.
"""

from __future__ import annotations

import logging

from celery import Celery
from sqlalchemy import update

from config import Settings
from models import WebhookDelivery
from models.db import Database
from services.webhooks import claim_due, lease_for
from workers.celery_app import NOTIFICATIONS_QUEUE

log = logging.getLogger(__name__)
BATCH = 200


def dispatch_webhooks(db: Database, app: Celery, settings: Settings) -> int:
    """Lease the due deliveries and publish a webhooks.deliver task for each; how many were sent."""
    with db.transaction() as session:
        due = claim_due(session, lease_for(settings), BATCH)
    if not due:
        return 0
    sent: list[str] = []
    try:
        with app.producer_or_acquire() as producer:
            for delivery_id, claim in due:
                app.send_task(
                    "webhooks.deliver",
                    args=[delivery_id, claim],
                    task_id=claim,
                    queue=NOTIFICATIONS_QUEUE,
                    producer=producer,
                )
                sent.append(delivery_id)
    except Exception as exc:  # the broker is away: release the rest so the next run takes them
        log.warning("publishing webhook deliveries failed (%s); they will be retried", type(exc).__name__)
        with db.transaction() as session:
            unsent = [delivery_id for delivery_id, _ in due if delivery_id not in sent]
            session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id.in_(unsent)).values(lease_until=None)
            )
    return len(sent)
