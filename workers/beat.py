"""`accrual beat`: the event relay and the scheduler of periodic jobs, in one loop.

Several may run at once: relays share the outbox through leases (SKIP LOCKED on PostgreSQL), and each
periodic job runs under a database lease, so it runs once per interval between all of them.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from celery import Celery

from config import Settings
from models.db import Database
from services.audit import chain_pending_entries
from services.events.wakeup import SENDS, Listener
from workers.dispatch import dispatch_emails, dispatch_webhooks
from workers.leases import acquire, lease_for
from workers.maintenance import (
    count_missed,
    fold_count_changes,
    purge_consumed_broker_messages,
    purge_expired_events,
    purge_expired_idempotency,
    recover_from_dead_workers,
    sweep_undecided,
)
from workers.relay import relay_once

log = logging.getLogger(__name__)
RELAY_BATCH = 100
STOP_CHECK_SECONDS = 0.5  # an idle loop notices a stop this soon, however long it may sleep
# How often the counters' pending changes are folded: a report adds up at most this long's changes.
COUNT_FOLD_SECONDS = 2.0


class Periodic:
    """A job due every `interval` seconds, run only by the holder of its lease."""

    def __init__(self, name: str, interval: float, job: Callable[[], int], leased: bool = True) -> None:
        self.name = name
        self.interval = interval
        self.job = job
        # A job safe to run from several schedulers at once (it claims rows with SKIP LOCKED) needs
        # no lease, and saves the lease's write on every run.
        self.leased = leased
        self.next_run = time.monotonic()

    def run_if_due(self, db: Database, holder: str) -> None:
        if time.monotonic() < self.next_run:
            return
        self.next_run = time.monotonic() + self.interval
        if self.leased:
            with db.transaction() as session:
                mine = acquire(session, self.name, holder, lease_for(self.interval))
            if not mine:
                return
        try:
            self.job()
        except Exception as exc:
            log.error("periodic job %s failed: %s", self.name, type(exc).__name__, exc_info=exc)


DISPATCHERS = ("dispatch-webhooks", "dispatch-emails")


def periodic_jobs(db: Database, settings: Settings, app: Celery, woken: bool = False) -> list[Periodic]:
    """The scheduler's jobs; `woken` when commits wake the loop, so the dispatchers only poll as a
    safety net (a new delivery or e-mail makes them due at once)."""
    dispatch_interval = settings.webhook_dispatch_interval_seconds
    if woken:
        dispatch_interval = max(dispatch_interval, settings.wakeup_poll_seconds)
    return [
        Periodic(
            "dispatch-webhooks",
            dispatch_interval,
            lambda: dispatch_webhooks(db, app, settings),
            leased=False,
        ),
        Periodic(
            "dispatch-emails",
            dispatch_interval,
            lambda: dispatch_emails(db, app, settings) if settings.mail_enabled else 0,
            leased=False,
        ),
        Periodic("sweep-undecided", settings.sweep_interval_seconds, lambda: sweep_undecided(db, settings)),
        # Each death is reaped by one scheduler (DELETE ... RETURNING): no lease needed.
        Periodic(
            "recover-dead-workers",
            settings.worker_heartbeat_seconds,
            lambda: recover_from_dead_workers(db, settings),
            leased=False,
        ),
        Periodic(
            "purge-broker",
            settings.broker_purge_interval_seconds,
            lambda: purge_consumed_broker_messages(settings),
        ),
        Periodic("purge-idempotency", 3600, lambda: purge_expired_idempotency(db)),
        # Under its lease: two schedulers purging at once would only wait on each other's deletes.
        Periodic(
            "purge-events",
            settings.event_purge_interval_seconds,
            lambda: purge_expired_events(db, settings),
        ),
        Periodic("count-missed", settings.recount_interval_seconds, lambda: count_missed(db)),
        # SKIP LOCKED lets several schedulers fold at once, each different changes.
        Periodic("fold-counts", COUNT_FOLD_SECONDS, lambda: fold_count_changes(db), leased=False),
    ]


def run(settings: Settings, db: Database, app: Celery, stop: threading.Event) -> None:
    """Relay and schedule until `stop` is set; between passes, sleep until woken or a job is due."""
    holder = f"{socket.gethostname()}:{os.getpid()}"
    listener = Listener(db.engine.url)
    listener.start()  # before the first pass: what commits after that pass wakes the loop
    jobs = periodic_jobs(db, settings, app, woken=listener.wakes)
    idle = settings.wakeup_poll_seconds if listener.wakes else settings.relay_interval_seconds
    log.info("relay %s started (%s)", holder, "woken by commits" if listener.wakes else "polling")
    started_last = 0.0
    if not settings.mail_enabled:
        log.warning("e-mail is off: ACCRUAL_SMTP_HOST is not set, so coordinators get no e-mail")
    try:
        while not stop.is_set():
            # At most one pass per relay interval, however many commits woke the loop: under load the
            # events of that interval go out as one batch, as when the relay polled; idle, it answers
            # the first wake-up at once.
            _pace(stop, started_last, settings.relay_interval_seconds)
            started_last = time.monotonic()
            try:
                handled = relay_once(
                    db, app, holder, RELAY_BATCH, settings.outbox_max_attempts, settings.outbox_lease
                )
                _chain_audit(db)
                for job in jobs:
                    job.run_if_due(db, holder)
            except Exception as exc:
                # The database may be restarting: keep going, the outbox keeps the work.
                log.error("relay pass failed: %s", type(exc).__name__, exc_info=exc)
                handled = 0
                stop.wait(1.0)
            if handled < RELAY_BATCH:
                woken = _idle(listener, stop, min(idle, _until_due(jobs)))
                if SENDS in woken:
                    for job in jobs:
                        if job.name in DISPATCHERS:
                            job.next_run = 0.0
    finally:
        listener.close()


def _chain_audit(db: Database) -> None:
    """Chain the audit entries of what committed since the last pass; a failure (an entry altered while
    pending, which `accrual audit verify` names) must not stop the relay."""
    try:
        chain_pending_entries(db)
    except Exception as exc:
        log.error("chaining the audit trail failed: %s", type(exc).__name__, exc_info=exc)


def _pace(stop: threading.Event, started_last: float, interval: float) -> None:
    """Wait out what is left of `interval` since the last pass began."""
    left = started_last + interval - time.monotonic()
    if left > 0:
        stop.wait(left)


def _idle(listener: Listener, stop: threading.Event, seconds: float) -> set[str]:
    """Wait up to `seconds` for a wake-up; the channels woken, or none. Waits in short slices, so that
    a stop is noticed soon however long the safety-net poll is."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return set()
        try:
            woken = listener.wait(min(left, STOP_CHECK_SECONDS))
        except Exception as exc:  # a wake-up is only a hint: never let listening stop the relay
            log.error("waiting for wake-ups failed: %s", type(exc).__name__, exc_info=exc)
            stop.wait(min(left, STOP_CHECK_SECONDS))
            continue
        if woken:
            return woken
    return set()


def _until_due(jobs: list[Periodic]) -> float:
    """Seconds until the first job is due (0 if one is)."""
    return max(0.0, min(job.next_run for job in jobs) - time.monotonic())
