"""Workers' heartbeats: a worker that stops beating is taken for dead, and its work handed out again.

A worker may die holding messages it took from the broker, started or only reserved. Redis gives such a
message back after its visibility timeout (15 minutes by default) and the embedded broker never does;
the sweep republishes what stayed undecided after ACCRUAL_SWEEP_AFTER_SECONDS. Both are long to wait
when a worker was killed. Each worker writes a heartbeat every ACCRUAL_WORKER_HEARTBEAT_SECONDS; the
scheduler takes a worker silent for DEAD_AFTER_BEATS beats for dead and publishes again at once every
screening left undecided (services.events.outbox.republish_undecided, unbounded). Which of those the
dead worker held is not recorded (that would cost a write per message); the others are delivered twice,
and the exactly-once guards of screening make the second delivery change nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from models import WorkerHeartbeat
from models.base import utcnow

# Beats a worker may miss before it is taken for dead: a busy database may delay one or two.
DEAD_AFTER_BEATS = 5


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def beat(session: Session, name: str) -> None:
    """Record that the worker `name` is alive now, by the database's clock on PostgreSQL (workers and
    schedulers on several machines need not agree on the time; on SQLite they share one machine)."""
    insert = pg_insert if _postgresql(session) else sqlite_insert
    now: Any = func.now() if _postgresql(session) else utcnow()
    statement = insert(WorkerHeartbeat).values(name=name, beat_at=now)
    session.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"beat_at": now}))


def forget(session: Session, name: str) -> None:
    """The worker `name` stopped cleanly: nothing of its work is left to hand out."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))


def reap_silent(session: Session, silent_for: timedelta) -> list[str]:
    """Remove the workers that have not beaten for `silent_for` (by the same clock as `beat`); their
    names. A row is removed by one scheduler only, so a death is acted on once however many run."""
    since: Any = func.now() - silent_for if _postgresql(session) else utcnow() - silent_for
    result = session.execute(
        delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < since).returning(WorkerHeartbeat.name)
    )
    return [name for (name,) in result]
