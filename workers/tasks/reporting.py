"""reporting.count: keep the recruitment counters in line with one application."""

from __future__ import annotations

from celery import Task, shared_task

from services.reporting.counts import count_application
from workers.resources import database_for
from workers.tasks import RETRY_TRANSIENT


@shared_task(
    name="reporting.count",
    bind=True,
    **RETRY_TRANSIENT,
)
def count(self: Task, application_id: str) -> None:
    """Apply the application's current state to the counters; duplicates and late events change nothing."""
    count_application(database_for(self.app.conf.accrual_settings), application_id)
