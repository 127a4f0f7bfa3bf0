"""screening.run and screening.run_batch: ids in, one service call, each decision committed with its event.

The relay sends batches; `screening.run` (one application) stays for messages sent by hand or queued by an
earlier release."""

from __future__ import annotations

import logging
import time
from collections import Counter

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from services.applications.rescreening import rescreen_trial as rescreen
from services.applications.screening import screen_application, screen_batch
from workers.resources import database_for
from workers.tasks import RETRY_TRANSIENT

log = logging.getLogger(__name__)


@shared_task(
    name="screening.run",
    bind=True,
    **RETRY_TRANSIENT,
)
def run(self: Task, application_id: str, event_id: str) -> None:
    """Screen one application; a redelivered or duplicate message changes nothing.

    Returns nothing, so Celery's own log lines carry no decision; the decision lives in the database.
    A screening that fails otherwise than transiently is dead-lettered by the use case; one that
    outlives the soft time limit is left to its delivery count, like one that kills its worker.
    """
    settings = self.app.conf.accrual_settings
    screen_application(  # which logs the outcome, with the request that caused the screening
        database_for(settings),
        application_id,
        event_id,
        settings.screening_max_deliveries,
        also_transient=(SoftTimeLimitExceeded,),
    )


@shared_task(
    name="screening.run_batch",
    bind=True,
    **RETRY_TRANSIENT,
)
def run_batch(self: Task, items: list[list[str]]) -> None:
    """Screen a batch of [application id, event id] in one transaction; see screen_batch for how an
    application that fails, or kills its worker, is kept from holding back the others."""
    settings = self.app.conf.accrual_settings
    outcomes = screen_batch(
        database_for(settings),
        [(application_id, event_id) for application_id, event_id in items],
        settings.screening_max_deliveries,
        also_transient=(SoftTimeLimitExceeded,),
    )
    tally = Counter(outcome.status for outcome in outcomes)
    log.info(
        "screening of a batch of %d: %s", len(items), ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))
    )


@shared_task(
    name="screening.rescreen_trial",
    bind=True,
    **RETRY_TRANSIENT,
)
def rescreen_trial(self: Task, trial_id: str, version: int, event_id: str) -> None:
    """Screen a trial's open applications again under a new criteria version, in batches."""
    settings = self.app.conf.accrual_settings
    # Stop well inside the soft time limit and continue in a fresh delivery of this same task.
    deadline = time.monotonic() + settings.task_soft_time_limit / 2
    tally = rescreen(database_for(settings), trial_id, version, event_id, deadline=deadline)
    log.info("re-screening %s v%d: %d screened, %d changed", trial_id, version, tally.screened, tally.changed)
    if not tally.finished:
        raise self.retry(countdown=0, max_retries=None)
