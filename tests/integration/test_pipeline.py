"""The whole pipeline with real processes: API -> outbox -> relay -> broker -> Celery worker -> decision.

Runs on SQLite with the embedded broker and on PostgreSQL with Redis, and through a broker outage and
a lost message, asserting every application is decided exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Application, Event
from tests.support.pipeline import assert_decided_exactly_once, decided, start_pipeline, submit_many
from tests.support.processes import Processes
from tests.support.reporting import counted_as
from tests.support.servers import RedisServer
from tests.support.stack import Stack, make_settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def decisions(stack: Stack, ids: list[str]) -> dict[str, Any]:
    with stack.db.sessions() as session:
        return dict(
            session.execute(select(Application.id, Application.decision).where(Application.id.in_(ids))).all()
        )


def test_sqlite_with_the_embedded_broker_decides_every_submission(
    sqlite_stack: Stack, processes: Processes
) -> None:
    start_pipeline(processes, sqlite_stack)
    ids = submit_many(sqlite_stack, 10)
    wait_until(
        lambda: decided(sqlite_stack, ids), timeout=60, what="decisions: " + processes.log("worker")[-2000:]
    )
    assert set(decisions(sqlite_stack, ids).values()) == {"eligible"}
    assert_decided_exactly_once(sqlite_stack, ids)

    # Counted in the transaction of each decision: no wait.
    assert counted_as(sqlite_stack, "eligible") == len(ids)


def test_postgresql_with_redis_decides_every_submission(
    pg_url: str, redis_url: str, tmp_path: Path, processes: Processes
) -> None:
    stack = Stack(make_settings(tmp_path, pg_url, redis_url))
    try:
        start_pipeline(processes, stack)
        ids = submit_many(stack, 10)
        wait_until(
            lambda: decided(stack, ids), timeout=60, what="decisions: " + processes.log("worker")[-2000:]
        )
        assert set(decisions(stack, ids).values()) == {"eligible"}
        assert_decided_exactly_once(stack, ids)
    finally:
        stack.close()


def test_s07_intake_answers_202_while_redis_is_down_and_all_are_decided_once_it_returns(
    pg_url: str, private_redis: RedisServer, tmp_path: Path, processes: Processes
) -> None:
    stack = Stack(make_settings(tmp_path, pg_url, private_redis.url))
    try:
        # The restarted Redis keeps nothing, so the tasks published before it stopped come back by the
        # sweep: a short sweep makes that seconds instead of a minute (and redeliveries likelier).
        start_pipeline(processes, stack, ACCRUAL_SWEEP_AFTER_SECONDS="5", ACCRUAL_SWEEP_INTERVAL_SECONDS="1")
        warmup = submit_many(stack, 1, "W")
        wait_until(lambda: decided(stack, warmup), timeout=60, what="the worker to start")
        before = submit_many(stack, 50, "B")  # a burst of 200, and Redis stops a quarter of the way in
        private_redis.stop()
        during = submit_many(stack, 150, "D")
        with stack.db.sessions() as session:
            undecided = session.scalar(
                select(func.count())
                .select_from(Application)
                .where(Application.id.in_(during), Application.decided_at.is_(None))
            )
        assert undecided == 150
        private_redis.start()
        ids = before + during
        wait_until(lambda: decided(stack, ids), timeout=120, what="decisions after the broker returned")
        assert_decided_exactly_once(stack, ids)
    finally:
        stack.close()


def test_s06_redis_restarted_without_persistence_loses_its_queue_and_the_sweep_publishes_again(
    pg_url: str, private_redis: RedisServer, tmp_path: Path, processes: Processes
) -> None:
    stack = Stack(make_settings(tmp_path, pg_url, private_redis.url))
    try:
        environment = {
            **stack.env(),
            "ACCRUAL_SWEEP_AFTER_SECONDS": "2",
            "ACCRUAL_SWEEP_INTERVAL_SECONDS": "1",
        }
        processes.start("beat", ["beat"], environment)  # no worker yet: the tasks wait in Redis
        ids = submit_many(stack, 20)

        def published() -> bool:
            with stack.db.sessions() as session:
                pending = session.scalar(
                    select(func.count()).select_from(Event).where(Event.status != "published")
                )
            return pending == 0

        wait_until(published, timeout=30, what="the relay to publish")
        private_redis.stop()  # --save "" --appendonly no: every queued task is gone with it
        private_redis.start()
        processes.start("worker", ["worker"], environment)
        wait_until(lambda: decided(stack, ids), timeout=90, what="the sweep to recover the lost tasks")
        assert_decided_exactly_once(stack, ids)
    finally:
        stack.close()


def test_s07_a_worker_started_while_redis_is_down_exits_2_or_with_wait_for_broker_works_once_it_returns(
    pg_url: str, private_redis: RedisServer, tmp_path: Path, processes: Processes
) -> None:
    stack = Stack(make_settings(tmp_path, pg_url, private_redis.url))
    try:
        private_redis.stop()
        # As the README says: one line naming the variable and the address, and exit status 2.
        refused = processes.start("refused-worker", ["worker"], stack.env())
        assert refused.wait(60) == 2
        assert "ACCRUAL_BROKER_URL" in processes.log("refused-worker")
        assert "Traceback" not in processes.log("refused-worker")
        environment = stack.env()
        processes.start("worker", ["worker", "--wait-for-broker"], environment)
        processes.start("beat", ["beat"], environment)
        wait_until(
            lambda: "ACCRUAL_BROKER_URL" in processes.log("worker"),
            timeout=30,
            what="the worker's one-line warning",
        )
        assert "keeps retrying" in processes.log("worker")
        ids = submit_many(stack, 3)
        private_redis.start()
        wait_until(lambda: decided(stack, ids), timeout=90, what="decisions once the broker started")
        assert_decided_exactly_once(stack, ids)
    finally:
        stack.close()


def test_an_amendment_reaches_the_worker_and_rescreens_every_open_application(
    sqlite_stack: Stack, processes: Processes
) -> None:
    import copy

    from services.trials.criteria import bundled_document

    start_pipeline(processes, sqlite_stack)
    ids = submit_many(sqlite_stack, 6)
    wait_until(lambda: decided(sqlite_stack, ids), timeout=60, what="first decisions")
    document = copy.deepcopy(bundled_document("NCT06359912.criteria.yaml"))
    next(c for c in document["criteria"] if c["id"] == "I1")["rule"] = {"var": "age", "between": [18, 60]}
    response = sqlite_stack.client.put(
        "/api/v1/trials/NCT06359912/criteria",
        json=document,
        headers={"Authorization": f"Bearer {sqlite_stack.admin}"},
    )
    assert response.status_code == 201

    def rescreened() -> bool:
        with sqlite_stack.db.sessions() as session:
            versions = session.scalars(
                select(Application.criteria_version).where(Application.id.in_(ids))
            ).all()
        return set(versions) == {2}

    wait_until(rescreened, timeout=60, what="re-screening under version 2")
    assert set(decisions(sqlite_stack, ids).values()) == {"ineligible"}  # born 1955: 71 at consent


def test_closing_a_channel_that_lost_redis_with_tasks_in_hand_does_not_raise(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The failure seen when Redis stopped during a burst: the worker's channel, closing with tasks
    unacknowledged, found its transport's connection gone and raised AttributeError, which stopped the
    worker ("Unrecoverable error") instead of letting it reconnect."""
    from kombu import Connection, Queue

    import workers.celery_app  # noqa: F401 - installs the QoS under test

    connection = Connection(private_redis.url)
    queue = Queue("held")
    with connection.Producer() as producer:
        producer.publish({"n": 1}, routing_key="held", declare=[queue])
    held: list[Any] = []
    with connection.Consumer([queue], callbacks=[lambda _body, message: held.append(message)]):
        connection.drain_events(timeout=5)
        assert len(held) == 1  # delivered, not acknowledged
        private_redis.stop()
        channel = connection.default_channel
        channel.connection.client = None  # what the worker's channel found when it closed
        channel.close()
    assert "could not return 1 unacknowledged tasks to Redis" in caplog.text
