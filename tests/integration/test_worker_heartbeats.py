"""Workers' heartbeats: the work of a worker that stopped beating is handed out again at once, not after
the broker's visibility timeout or the sweep."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Event, WorkerHeartbeat
from models.base import utcnow
from services.events.heartbeats import beat
from tests.support.pipeline import assert_decided_exactly_once, decided, submit_many
from tests.support.processes import Processes
from tests.support.relay import relay
from tests.support.stack import Stack
from tests.support.waiting import wait_until
from workers.maintenance import recover_from_dead_workers


def heartbeats(stack: Stack) -> dict[str, object]:
    with stack.db.sessions() as session:
        return dict(session.execute(select(WorkerHeartbeat.name, WorkerHeartbeat.beat_at)).all())  # type: ignore[arg-type]


def submission_status(stack: Stack, application_id: str) -> str:
    with stack.db.sessions() as session:
        return session.scalars(select(Event.status).where(Event.application_id == application_id)).one()


def test_a_silent_worker_has_its_screenings_published_again_once(stack: Stack) -> None:
    [application] = submit_many(stack, 1, "SILENT")
    relay(stack)  # published: in the broker, or in a worker's hands
    assert submission_status(stack, application) == "published"
    assert recover_from_dead_workers(stack.db, stack.settings) == 0  # no worker has ever beaten
    with stack.db.transaction() as session:
        beat(session, "alive:1")
        beat(session, "dead:2")
        session.get_one(WorkerHeartbeat, "dead:2").beat_at = utcnow() - timedelta(seconds=30)
    assert recover_from_dead_workers(stack.db, stack.settings) == 1
    assert submission_status(stack, application) == "pending"  # the relay hands it out again
    assert list(heartbeats(stack)) == ["alive:1"]
    assert recover_from_dead_workers(stack.db, stack.settings) == 0  # a death is acted on once


def test_a_fresh_heartbeat_publishes_nothing_again(stack: Stack) -> None:
    [application] = submit_many(stack, 1, "ALIVE")
    relay(stack)
    with stack.db.transaction() as session:
        beat(session, "alive:1")
    assert recover_from_dead_workers(stack.db, stack.settings) == 0
    assert submission_status(stack, application) == "published"


@pytest.mark.slow
def test_a_worker_killed_mid_burst_has_its_work_decided_without_waiting_for_the_sweep(
    backend: Stack, processes: Processes
) -> None:
    # The sweep is an hour away and Redis gives unacknowledged messages back after 15 minutes: only the
    # heartbeat can bring back what the killed worker held.
    environment = {
        **backend.env(),
        "ACCRUAL_SWEEP_AFTER_SECONDS": "3600",
        "ACCRUAL_SWEEP_INTERVAL_SECONDS": "3600",
    }
    worker = processes.start("worker", ["worker"], environment)
    processes.start("beat", ["beat"], environment)
    wait_until(lambda: len(heartbeats(backend)) == 1, timeout=60, what="the worker's first heartbeat")
    ids = submit_many(backend, 60, "HEARTBEAT")
    wait_until(lambda: decided(backend, ids[:1]), timeout=60, what="the first decision")
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool, whatever they held
    worker.wait(10)
    processes.start("worker-2", ["worker"], environment)
    wait_until(
        lambda: decided(backend, ids),
        timeout=90,
        what="every decision: " + processes.log("beat")[-1500:],
    )
    assert_decided_exactly_once(backend, ids)
    wait_until(lambda: len(heartbeats(backend)) == 1, timeout=30, what="the dead worker's row reaped")


@pytest.mark.slow
def test_a_worker_that_stops_cleanly_removes_its_heartbeat(sqlite_stack: Stack, processes: Processes) -> None:
    worker = processes.start("worker", ["worker"], sqlite_stack.env())
    wait_until(lambda: len(heartbeats(sqlite_stack)) == 1, timeout=60, what="the worker's first heartbeat")
    worker.terminate()
    worker.wait(60)
    assert heartbeats(sqlite_stack) == {}
