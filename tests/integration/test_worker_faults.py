"""Workers killed in the middle of screening, and tasks delivered twice: every application still
reaches exactly one decision, on SQLite with the embedded broker and on PostgreSQL with Redis."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import Application, Event
from tests.conftest import Processes, Stack, make_settings, wait_until
from tests.integration.test_pipeline import assert_decided_exactly_once, decided, submit_many

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres+redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "sqlite":
        settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'accrual.db'}")
    else:
        settings = make_settings(
            tmp_path, request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")
        )
    built = Stack(settings)
    yield built
    built.close()


def decided_count(stack: Stack, ids: list[str]) -> int:
    with stack.db.sessions() as session:
        query = (
            select(func.count())
            .select_from(Application)
            .where(Application.id.in_(ids), Application.decided_at.is_not(None))
        )
        return int(session.scalar(query) or 0)


def test_a_worker_killed_while_screening_loses_no_application_and_decides_none_twice(
    backend: Stack, processes: Processes
) -> None:
    environment = {**backend.env(), "ACCRUAL_SWEEP_AFTER_SECONDS": "5", "ACCRUAL_SWEEP_INTERVAL_SECONDS": "1"}
    worker = processes.start("worker", ["worker"], environment)
    processes.start("beat", ["beat"], environment)
    ids = submit_many(backend, 40, "KILL")
    wait_until(lambda: decided_count(backend, ids) >= 3, timeout=60, what="the first decisions")
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool, whatever they were doing
    worker.wait(10)
    processes.start("worker-2", ["worker"], environment)
    wait_until(
        lambda: decided(backend, ids),
        timeout=120,
        what="every decision: " + processes.log("worker-2")[-1500:],
    )
    assert_decided_exactly_once(backend, ids)


# kombu's SQLAlchemy transport declares its models with a loader option SQLAlchemy 2.1 deprecates.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:sqlalchemy.exc.SADeprecationWarning")
def test_a_task_published_twice_by_hand_decides_once(backend: Stack, processes: Processes) -> None:
    from workers.celery_app import make_celery

    processes.start("worker", ["worker"], backend.env())
    [application] = submit_many(backend, 1, "TWICE")
    with backend.db.sessions() as session:
        event_id = session.scalars(
            select(Event.id).where(Event.application_id == application, Event.type == "application.submitted")
        ).one()
    app = make_celery(backend.settings)
    for _ in range(2):  # the relay is not running: these are the only two deliveries
        app.send_task("screening.run", args=[application, event_id], queue="screening")
    wait_until(lambda: decided(backend, [application]), timeout=60, what="the decision")
    assert_decided_exactly_once(backend, [application])
    with backend.db.sessions() as session:
        deliveries = session.get_one(Application, application).screening_deliveries
    assert deliveries >= 1
