"""webhooks.deliver: send one attempt of a webhook delivery and record it."""

from __future__ import annotations

from celery import Task, shared_task

from services.notifications.webhooks import deliver as deliver_once
from workers.resources import database_for
from workers.tasks import RETRY_TRANSIENT


@shared_task(name="webhooks.deliver", bind=True, **RETRY_TRANSIENT)
def deliver(self: Task, delivery_id: str, claim: str) -> None:
    """One attempt under the dispatcher's claim. The schedule lives in the delivery's row: a lost task
    is handed out again when its lease ends, and a stale one finds another claim and sends nothing."""
    settings = self.app.conf.accrual_settings
    deliver_once(database_for(settings), delivery_id, claim, settings)
