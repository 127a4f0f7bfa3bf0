"""Periodic jobs: publish undecided applications again (after a while, or at once when a worker
died), fold the counters' changes and count what they missed, drop consumed broker rows, expired
replays and published events past their retention."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, text

from config import Settings
from models import IdempotencyRecord
from models.base import utcnow
from models.db import Database, make_engine
from services.applications.rescreening import republish_unfinished_amendments
from services.events.heartbeats import DEAD_AFTER_BEATS, reap_silent
from services.events.outbox import republish_undecided
from services.events.retention import PURGE_BATCH, purge_batch
from services.reporting.counts import FOLD_BATCH, count_uncounted, fold_changes

log = logging.getLogger(__name__)


def sweep_undecided(db: Database, settings: Settings) -> int:
    """Put the submission event of every application undecided for too long back in the outbox."""
    older_than = utcnow() - timedelta(seconds=settings.sweep_after_seconds)
    with db.transaction() as session:
        ids = republish_undecided(session, older_than)
        trials = republish_unfinished_amendments(session, older_than)
    if ids:
        log.warning("re-published %d undecided applications", len(ids))
    if trials:
        log.warning("re-published the unfinished amendments of %s", ", ".join(trials))
    return len(ids) + len(trials)


def recover_from_dead_workers(db: Database, settings: Settings) -> int:
    """When a worker has stopped beating, publish again at once every screening in flight (it may have
    held any of them) and every unfinished amendment; how many were published again."""
    now = utcnow()
    silent_for = timedelta(seconds=settings.worker_heartbeat_seconds * DEAD_AFTER_BEATS)
    with db.transaction() as session:
        dead = reap_silent(session, silent_for)
        if not dead:
            return 0
        ids = republish_undecided(session, now, limit=None)  # every one the dead worker may have held
        trials = republish_unfinished_amendments(session, now)
    log.warning(
        "%d workers stopped beating (%s); re-published %d undecided applications and %d amendments",
        len(dead),
        ", ".join(dead),
        len(ids),
        len(trials),
    )
    return len(ids) + len(trials)


def count_missed(db: Database) -> int:
    """The counters' safety net: count applications whose status they do not hold (submitted before
    the counters existed, or changed by hand in the database); recounting is idempotent, so a race
    with the application's own transaction is harmless."""
    counted = count_uncounted(db)
    if counted:
        log.warning("counted %d applications the counters had missed", counted)
    return counted


def fold_count_changes(db: Database) -> int:
    """Move the counters' pending changes into them, so the changes a report adds up stay few."""
    folded = 0
    while moved := fold_changes(db):
        folded += moved
        if moved < FOLD_BATCH:
            break
    return folded


def purge_expired_idempotency(db: Database) -> int:
    with db.transaction() as session:
        result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)


def purge_expired_events(db: Database, settings: Settings, batch: int = PURGE_BATCH) -> int:
    """Delete published events older than ACCRUAL_EVENT_RETENTION_DAYS that nothing needs any more, a
    batch per transaction (no long lock, no long transaction holding back the feed); how many."""
    published_before = utcnow() - timedelta(days=settings.event_retention_days)
    purged = 0
    while True:
        with db.transaction() as session:
            deleted = purge_batch(session, published_before, batch)
        purged += deleted
        if deleted < batch:
            break
    if purged:
        log.info("purged %d published events past their retention", purged)
    return purged


def purge_consumed_broker_messages(settings: Settings) -> int:
    """kombu's SQLAlchemy transport never deletes consumed rows; left alone they slow every poll."""
    if not settings.uses_embedded_broker:
        return 0
    engine = make_engine(settings.broker_url.removeprefix("sqla+"))
    try:
        with engine.begin() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='kombu_message'")
            ).first()
            if exists is None:
                return 0
            result = connection.execute(text("DELETE FROM kombu_message WHERE visible = 0"))
            return int(result.rowcount or 0)
    finally:
        engine.dispose()
