"""Workers killed, stopped, slowed or cut off from Redis in the middle of screening (RELIABILITY.md §7.1
scenarios 1-5 and 8), and the worker's start-up self-check (§7.7 scenario 49): every application still
reaches exactly one decision (one screening, one `application.screened` event, one decision entry in the
audit trail), on SQLite with the embedded broker and on PostgreSQL with Redis.

Where a scenario does not fit the design as written:
- Deliveries are counted by Accrual, per application (`screening_deliveries`), not read from the broker's
  `redelivered` flag, which the embedded broker does not have: a redelivery shows as a count of 2.
- The relay publishes screening batches (ACCRUAL_SCREENING_BATCH_SIZE), so one task holds several
  applications; a killed batch is screened again one application at a time.
- 2: a whole worker's in-flight work comes back through the scheduler (the dead worker's heartbeat, or
  the sweep of applications undecided for ACCRUAL_SWEEP_AFTER_SECONDS), not through Redis's visibility
  timeout (15 minutes) or the embedded broker, which never gives back a dead consumer's message. The bound
  asserted is therefore the sweep's: sweep age + sweep interval + the task time limit, from the moment the
  fresh worker is up (nothing can be decided before).
- 3: Accrual does not set Celery's worker_soft_shutdown_timeout (it only applies to a cold shutdown);
  SIGTERM is Celery's warm shutdown, which lets the running tasks finish, each bounded by
  ACCRUAL_TASK_TIME_LIMIT, and returns the reserved ones to the broker. That limit is the exit bound here.
- 5: the settings refuse ACCRUAL_TASK_TIME_LIMIT above a third of ACCRUAL_VISIBILITY_TIMEOUT, and the
  self-check refuses a live Celery task_time_limit not below the transport's visibility timeout; to force a
  duplicate concurrent run anyway, the Redis case starts a worker with the check skipped and a 2 s
  visibility timeout, and the embedded broker (which has no visibility timeout) is handed the same task
  twice. The duplicate never evaluates: it waits on the lock the first run holds (PostgreSQL's row lock,
  SQLite's write lock) and then finds the application decided.
- 4: 200 healthy applications beside the poison one, not 999, for CI time.
- 8: the embedded broker is a file each process opens, with no connection to drop: Redis only.
- 49: the delivery flags are fixed in workers/celery_app.py, not settings, so the self-check
  (workers/self_check.py) reads the live Celery app; the cases set them through tests/support/poison_worker.py
  (POISON_CELERY). Redis without an append-only file is a warning, as the README documents (the outbox and
  the sweep publish again what a restart lost); everything else listed refuses the start (exit 2).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from sqlalchemy import func, select

from models import (
    Application,
    ApplicationHistory,
    Event,
    Screening,
    WorkerHeartbeat,
)
from services.applications.dead_letters import RETRY_REASON
from services.applications.results import read_results
from services.applications.screening import POISON_NOTE
from tests.support.applicants import eligible_applicant
from tests.support.database import status_of
from tests.support.invariants import application_changes
from tests.support.pipeline import assert_decided_exactly_once, decided, submit_many
from tests.support.processes import Processes
from tests.support.servers import RedisServer, unavailable
from tests.support.stack import Stack, make_settings, sqlite_url
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

POISON = "tests.support.poison_worker"


# --- what the database says ---


def decided_count(stack: Stack, ids: list[str]) -> int:
    with stack.db.sessions() as session:
        query = (
            select(func.count())
            .select_from(Application)
            .where(Application.id.in_(ids), Application.decided_at.is_not(None))
        )
        return int(session.scalar(query) or 0)


def deliveries(stack: Stack, ids: list[str]) -> dict[str, int]:
    with stack.db.sessions() as session:
        rows = session.execute(
            select(Application.id, Application.screening_deliveries).where(Application.id.in_(ids))
        ).all()
    return {application_id: int(count) for application_id, count in rows}


def decision_entries(stack: Stack, ids: list[str]) -> dict[str, int]:
    """Per application, the audit entries that took it out of `submitted` (chained or still pending)."""
    found: dict[str, int] = {}
    with stack.db.sessions() as session:
        for entity_id, changes in application_changes(session, ids):
            if (changes or {}).get("status", [None])[0] == "submitted":
                found[entity_id] = found.get(entity_id, 0) + 1
    return found


def assert_decided_once(stack: Stack, ids: list[str]) -> None:
    """One screening, one application.screened event and one decision audit entry per application."""
    assert_decided_exactly_once(stack, ids)
    assert decision_entries(stack, ids) == dict.fromkeys(ids, 1)


def heartbeats(stack: Stack) -> set[str]:
    with stack.db.sessions() as session:
        return set(session.scalars(select(WorkerHeartbeat.name)).all())


def started_after(stack: Stack, known: set[str]) -> str | None:
    """The heartbeat of a worker that was not beating in `known`: it is up and consuming."""
    return next(iter(heartbeats(stack) - known), None)


def event_of(stack: Stack, application_id: str) -> str:
    with stack.db.sessions() as session:
        return session.scalars(
            select(Event.id).where(
                Event.application_id == application_id, Event.type == "application.submitted"
            )
        ).one()


# --- the processes ---


def marked(directory: Path, kind: str = "check") -> list[tuple[int, int]]:
    """(pid, when in ns) of each pool process that began a (slowed) check, or a delivery, in that order."""
    marks = [(path.stat().st_mtime_ns, path.name) for path in directory.glob(f"{kind}-*")]
    return [(int(name.split("-")[1]), when) for when, name in sorted(marks)]


def marking_pids(directory: Path, kind: str = "check") -> list[int]:
    return [pid for pid, _ in marked(directory, kind)]


def pool_children(worker: subprocess.Popen[bytes]) -> set[int]:
    return {child.pid for child in psutil.Process(worker.pid).children()}


def slowed(stack: Stack, marks: Path, seconds: float, **variables: str) -> dict[str, str]:
    """A poison worker's environment whose every evaluation is marked and takes `seconds`."""
    return {**stack.env(), "POISON_SLEEP_SECONDS": str(seconds), "POISON_MARKS": str(marks), **variables}


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    directory = tmp_path / "marks"
    directory.mkdir()
    return directory


def command(
    environment: dict[str, str], *args: str, module: str = "services.cli"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], env=environment, capture_output=True, text=True, timeout=120
    )


def publish_by_hand(stack: Stack, application_id: str, times: int) -> None:
    """Send the application's screening `times` over, as a duplicate or redelivery would."""
    from workers.celery_app import make_celery

    app = make_celery(stack.settings)
    for _ in range(times):
        app.send_task(
            "screening.run", args=[application_id, event_of(stack, application_id)], queue="screening"
        )
    app.close()


# --- 1: one pool process killed ---


def test_s01_a_pool_child_killed_mid_check_is_redelivered_and_each_application_decided_once(
    backend: Stack, processes: Processes, marks: Path
) -> None:
    # Two batches of five, one per pool process, each evaluation 1 s; no sweep during the test, so the
    # only second delivery is the requeue of the killed process's task (task_reject_on_worker_lost).
    environment = slowed(
        backend, marks, 1.0, ACCRUAL_SCREENING_BATCH_SIZE="5", ACCRUAL_SWEEP_AFTER_SECONDS="600"
    )
    ids = submit_many(backend, 10, "CHILD")
    worker = processes.start("worker", ["worker"], environment, module=POISON)
    processes.start("beat", ["beat"], environment)
    victim = wait_until(lambda: marking_pids(marks)[:1], timeout=90, what="a check to start")[0]
    assert victim in pool_children(worker) and victim != worker.pid
    os.kill(victim, signal.SIGKILL)
    wait_until(
        lambda: decided(backend, ids), timeout=120, what="every decision: " + processes.log("worker")[-1500:]
    )
    assert worker.poll() is None  # only the pool process died; the worker replaced it
    assert_decided_once(backend, ids)
    counts = deliveries(backend, ids)
    # The killed batch was delivered twice (its second time one application at a time), the other once.
    assert sorted(counts.values()) == [1] * 5 + [2] * 5, counts


# --- 2: the whole worker killed ---


def test_s02_a_whole_worker_killed_mid_task_is_recovered_by_a_fresh_one_within_the_sweep_bound(
    backend: Stack, processes: Processes, marks: Path
) -> None:
    sweep_after, sweep_interval, time_limit = 5, 1, 45
    environment = slowed(
        backend,
        marks,
        0.1,
        ACCRUAL_SWEEP_AFTER_SECONDS=str(sweep_after),
        ACCRUAL_SWEEP_INTERVAL_SECONDS=str(sweep_interval),
        ACCRUAL_TASK_TIME_LIMIT=str(time_limit),
        ACCRUAL_TASK_SOFT_TIME_LIMIT=str(time_limit - 15),
    )
    ids = submit_many(backend, 40, "KILL")
    worker = processes.start("worker", ["worker"], environment, module=POISON)
    processes.start("beat", ["beat"], environment)
    wait_until(lambda: marked(marks), timeout=90, what="a check to start")
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool, whatever they were doing
    worker.wait(10)
    in_flight = [
        a for a, n in deliveries(backend, ids).items() if n > 0 and status_of(backend, a) == "submitted"
    ]
    assert in_flight, "the worker was killed with nothing in hand"

    known = heartbeats(backend)
    processes.start("worker-2", ["worker"], {**environment, "POISON_SLEEP_SECONDS": "0"}, module=POISON)
    wait_until(
        lambda: started_after(backend, known),
        timeout=90,
        what="the fresh worker: " + processes.log("worker-2"),
    )
    up = time.monotonic()
    wait_until(
        lambda: decided(backend, ids),
        timeout=180,
        what="every decision: " + processes.log("worker-2")[-1500:],
    )
    recovered_in = time.monotonic() - up
    # The design's bound: the sweep publishes what is undecided after sweep_after (checked every
    # sweep_interval), and a task cannot outlive its hard time limit.
    bound = sweep_after + sweep_interval + time_limit
    assert recovered_in <= bound, (
        f"decided {recovered_in:.1f}s after the fresh worker was up (bound {bound}s)"
    )
    assert_decided_once(backend, ids)


# --- 3: SIGTERM during a burst ---


def test_s03_sigterm_during_a_burst_of_200_exits_within_the_task_limit_and_all_are_decided_once(
    backend: Stack, processes: Processes, marks: Path
) -> None:
    time_limit, margin = 30, 30
    environment = slowed(
        backend,
        marks,
        0.1,  # a batch of 20 takes 2 s, the burst at least 10 s: SIGTERM comes in the middle of it
        # The sweep stays out of the burst (its copies are not what is tested), and is there after it.
        ACCRUAL_SWEEP_AFTER_SECONDS="30",
        ACCRUAL_SWEEP_INTERVAL_SECONDS="2",
        ACCRUAL_TASK_TIME_LIMIT=str(time_limit),
        ACCRUAL_TASK_SOFT_TIME_LIMIT=str(time_limit - 10),
    )
    ids = submit_many(backend, 200, "BURST")
    worker = processes.start("worker", ["worker"], environment, module=POISON)
    processes.start("beat", ["beat"], environment)
    wait_until(lambda: marking_pids(marks), timeout=120, what="the burst to start")
    worker.send_signal(signal.SIGTERM)  # the main process, as a supervisor or `docker stop` does
    try:
        code = worker.wait(time_limit + margin)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker outlived its warm shutdown: " + processes.log("worker")[-1500:])
    assert code == 0, processes.log("worker")[-1500:]
    # It finished what it was running and gave the rest back: a fresh worker decides those.
    assert decided_count(backend, ids) < len(ids), "the burst was over before SIGTERM"

    processes.start("worker-2", ["worker"], environment)
    wait_until(
        lambda: decided(backend, ids),
        timeout=180,
        what="every decision: " + processes.log("worker-2")[-1500:],
    )
    assert_decided_once(backend, ids)


# --- 4: one poison application among many ---


def test_s04_one_application_that_kills_its_worker_is_dead_lettered_alone_and_200_others_decided(
    backend: Stack, processes: Processes
) -> None:
    """200 healthy applications (not the scenario's 999: CI time) with one poison among them, in the
    middle of a batch of 20: it is dead-lettered with its metric, every other one decided.

    With the default ACCRUAL_SCREENING_MAX_DELIVERIES (3). Deliveries are counted before evaluating, so
    copies of a batch running at once (the requeue of a killed one and the sweep's, or two of the sweep's)
    count one another: at 2, a healthy application behind the poison in its batch was dead-lettered now
    and then, its count pushed past the limit by a concurrent copy without a second death."""
    environment = {
        **backend.env(),
        "ACCRUAL_SWEEP_AFTER_SECONDS": "2",
        "ACCRUAL_SWEEP_INTERVAL_SECONDS": "2",
        "POISON_WAGNER_GRADE": "3",
    }
    innocent = submit_many(backend, 100, "HEALTHY-A")
    poison = backend.submit(eligible_applicant("POISON", wagner_grade=3)).get_json()["id"]
    innocent += submit_many(backend, 100, "HEALTHY-B")
    processes.start("beat", ["beat"], environment)
    processes.start("poison-worker", ["worker"], environment, module=POISON)
    every = [*innocent, poison]
    wait_until(
        lambda: decided(backend, every),
        timeout=180,
        what="every decision: " + processes.log("poison-worker")[-1500:],
    )
    assert_decided_once(backend, every)
    with backend.db.sessions() as session:
        statuses = session.execute(
            select(Application.status, func.count())
            .where(Application.id.in_(innocent))
            .group_by(Application.status)
        ).all()
        assert dict(statuses) == {"eligible": 200}
        assert (
            session.scalar(
                select(func.count()).where(
                    Application.id.in_(innocent), Application.dead_lettered_at.is_not(None)
                )
            )
            == 0
        )
        killer = session.get_one(Application, poison)
        assert killer.status == "needs_review" and killer.dead_lettered_at is not None
        assert killer.screening_deliveries >= 4  # three deaths, then the delivery that gave up: no loop
    assert "accrual_screening_dead_letters 1.0" in backend.client.get("/metrics").get_data(as_text=True)


def test_an_application_that_kills_its_worker_three_times_is_dead_lettered_and_can_be_retried(
    backend: Stack, processes: Processes
) -> None:
    # Celery requeues the task of a killed pool process once, then drops it (a redelivered message is
    # not requeued again); the sweep re-publishes it, so each death is followed by another delivery.
    environment = {
        **backend.env(),
        "ACCRUAL_SCREENING_MAX_DELIVERIES": "3",
        "ACCRUAL_SWEEP_AFTER_SECONDS": "2",
        "ACCRUAL_SWEEP_INTERVAL_SECONDS": "1",
    }
    processes.start("beat", ["beat"], environment)
    poisoned = processes.start("poison-worker", ["worker"], environment, module=POISON)
    [application] = submit_many(backend, 1, "POISON")
    wait_until(
        lambda: status_of(backend, application) == "needs_review",
        timeout=120,
        what="the dead letter: " + processes.log("poison-worker")[-1500:],
    )
    with backend.db.sessions() as session:
        row = session.get_one(Application, application)
        assert row.screening_deliveries >= 4  # three deaths, then the delivery that gave up
        assert row.dead_lettered_at is not None and row.decision == "needs_review"
        [screening] = session.scalars(select(Screening).where(Screening.application_id == application)).all()
        assert screening.decision == "needs_review"
        assert read_results(screening.results) == []  # never evaluated: evaluating is what killed the workers
        reasons = session.scalars(
            select(ApplicationHistory.reason).where(ApplicationHistory.application_id == application)
        ).all()
        # Two copies (a requeue and a sweep) can be counted at once: the one that gave up wrote the note.
        notes = {POISON_NOTE.format(n=n) for n in range(3, row.screening_deliveries)}
        assert len(notes & set(reasons)) == 1
    assert "accrual_screening_dead_letters 1.0" in backend.client.get("/metrics").get_data(as_text=True)
    listed = command(environment, "screening", "dead-letters")
    assert listed.returncode == 0 and application in listed.stdout

    # The cause is fixed (here: a worker without the fault); the operator sends it back to screening.
    poisoned.terminate()
    try:
        poisoned.wait(30)
    except subprocess.TimeoutExpired:  # a loaded machine can outlast the warm shutdown: stop it for good
        poisoned.kill()
        poisoned.wait(30)
    processes.start("worker", ["worker"], environment)
    retried = command(environment, "screening", "retry", application)
    assert retried.returncode == 0, retried.stderr
    wait_until(
        lambda: status_of(backend, application) == "eligible",
        timeout=90,
        what="the retried screening: " + processes.log("worker")[-1500:],
    )
    with backend.db.sessions() as session:
        row = session.get_one(Application, application)
        assert row.dead_lettered_at is None and row.screening_round == 2
        decisions = session.scalars(
            select(Screening.decision)
            .where(Screening.application_id == application)
            .order_by(Screening.round)
        ).all()
        assert decisions == ["needs_review", "eligible"]
        screened = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.application_id == application, Event.type == "application.screened")
        )
        assert screened == 2  # one per screening round: the dead letter, then the retry
        assert (
            RETRY_REASON
            in session.scalars(
                select(ApplicationHistory.reason).where(ApplicationHistory.application_id == application)
            ).all()
        )
    assert "accrual_screening_dead_letters 0.0" in backend.client.get("/metrics").get_data(as_text=True)
    again = command(environment, "screening", "retry", application)
    assert again.returncode == 2 and "nothing was retried" in again.stderr


# --- 5: a task slower than the visibility timeout ---


# kombu's SQLAlchemy transport declares its models with a loader option SQLAlchemy 2.1 deprecates.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:sqlalchemy.exc.SADeprecationWarning")
def test_s05_a_duplicate_run_concurrent_with_a_slow_one_changes_nothing(
    backend: Stack, processes: Processes, marks: Path
) -> None:
    """The duplicate delivery begins while the first run is still evaluating; it waits on the lock the
    first run holds on the application (PostgreSQL's row lock, SQLite's write lock), then finds it
    decided: one check, one decision, one event. The duplicate is counted as a delivery only when it
    came between the first run's count and its lock (a window of one commit), so at most twice."""
    slow = 8.0
    if backend.settings.uses_embedded_broker:
        # No visibility timeout here: the duplicate is the same task handed over twice at once.
        environment, copies = slowed(backend, marks, slow), 2
    else:
        # Forced past the self-check: Redis gives the running task to the other pool process after 2 s.
        unsafe = {
            "broker_transport_options": {
                "visibility_timeout": 2,
                "unacked_restore_interval": 1,
                "unacked_restore_throttle": 1,
            },
            "task_time_limit": 60,
            "task_soft_time_limit": 50,
        }
        environment = slowed(
            backend, marks, slow, POISON_CELERY=json.dumps(unsafe), POISON_SKIP_SELF_CHECK="1"
        )
        copies = 1
    [application] = submit_many(backend, 1, "SLOW")
    processes.start("worker", ["worker"], environment, module=POISON)  # no relay: only these deliveries
    publish_by_hand(backend, application, copies)
    wait_until(
        lambda: len(set(marking_pids(marks, "delivery"))) >= 2,
        timeout=90,
        what="a second delivery, in another process: " + processes.log("worker")[-1500:],
    )
    wait_until(lambda: decided(backend, [application]), timeout=90, what="the decision")
    [(checked_by, check_began)] = marked(marks)  # evaluated once, by whichever delivery counted first
    began: dict[int, int] = {}  # pool process -> when its first delivery began
    for pid, when in marked(marks, "delivery"):
        began.setdefault(pid, when)
    assert checked_by in began and len(began) >= 2
    # Concurrent: the other delivery began before the evaluating run could have ended.
    assert any(when < check_began + slow * 1e9 for pid, when in began.items() if pid != checked_by)
    assert_decided_once(backend, [application])
    assert deliveries(backend, [application])[application] in (1, 2)


@pytest.mark.parametrize(
    ("variables", "poison_celery", "refusal"),
    [
        (
            {"ACCRUAL_TASK_TIME_LIMIT": "400", "ACCRUAL_TASK_SOFT_TIME_LIMIT": "300"},
            None,
            "ACCRUAL_VISIBILITY_TIMEOUT must be at least 3 x ACCRUAL_TASK_TIME_LIMIT",
        ),
        ({}, {"task_time_limit": 900}, "task_time_limit (900) is not below the visibility timeout (900)"),
    ],
    ids=["settings", "live-configuration"],
)
def test_s05_start_up_refuses_a_task_time_limit_not_below_the_visibility_timeout(
    tmp_path: Path,
    redis_url: str,
    variables: dict[str, str],
    poison_celery: dict[str, Any] | None,
    refusal: str,
) -> None:
    environment = {**unstarted_environment(tmp_path, redis_url), **variables}
    if poison_celery is None:
        started = command(environment, "worker")
    else:
        started = command(
            {**environment, "POISON_CELERY": json.dumps(poison_celery)}, "worker", module=POISON
        )
    assert started.returncode == 2, started.stderr
    assert refusal in started.stderr


# --- 8: the worker's Redis connection killed mid-task ---


def test_s08_a_task_whose_redis_connection_is_killed_is_cancelled_redelivered_and_decided_once(
    tmp_path: Path, pg_stack_url: str, private_redis: RedisServer, processes: Processes, marks: Path
) -> None:
    stack = Stack(make_settings(tmp_path, pg_stack_url, private_redis.url))
    try:
        [application] = submit_many(stack, 1, "CUT")
        processes.start("worker", ["worker"], slowed(stack, marks, 6), module=POISON)  # no relay, no sweep
        publish_by_hand(stack, application, 1)
        [first] = wait_until(lambda: marking_pids(marks)[:1], timeout=90, what="the check to start")
        # The server is this test's own: every client but this one is the worker's.
        client = redis.Redis.from_url(private_redis.url)
        killed = client.client_kill_filter(_type="normal", skipme=True)
        client.close()
        assert killed >= 1
        wait_until(
            lambda: decided(stack, [application]),
            timeout=120,
            what="the decision: " + processes.log("worker")[-2000:],
        )
        assert_decided_once(stack, [application])
        assert deliveries(stack, [application])[application] == 2  # the cancelled run, then the redelivery
        assert len(marking_pids(marks)) == 2
        assert not psutil.pid_exists(first) or psutil.Process(first).status() == psutil.STATUS_ZOMBIE
    finally:
        stack.close()


# --- 49: the start-up self-check ---


def unstarted_environment(tmp_path: Path, broker_url: str = "") -> dict[str, str]:
    """For a worker that must refuse to start: a reachable (empty) database and the broker."""
    environment = {
        **os.environ,
        "ACCRUAL_DATA_DIR": str(tmp_path),
        "ACCRUAL_DATABASE_URL": sqlite_url(tmp_path),
        "ACCRUAL_SECRET_KEY": "test-secret",
    }
    if broker_url:
        environment["ACCRUAL_BROKER_URL"] = broker_url
    return environment


@pytest.fixture(scope="module")
def evicting_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis that evicts keys when full, as a cache would be configured."""
    if shutil.which("redis-server") is None:
        unavailable("the redis-server program (Debian package redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("evicting"), "--maxmemory-policy", "allkeys-lru")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("celery", "broker", "refusal"),
    [
        ({"task_acks_late": False}, "embedded", "task_acks_late is False, not True"),
        ({"task_reject_on_worker_lost": False}, "embedded", "task_reject_on_worker_lost is False, not True"),
        ({"worker_prefetch_multiplier": 4}, "embedded", "worker_prefetch_multiplier is 4, not 1"),
        (
            {"worker_cancel_long_running_tasks_on_connection_loss": False},
            "embedded",
            "worker_cancel_long_running_tasks_on_connection_loss is False, not True",
        ),
        ({"task_always_eager": True}, "embedded", "task_always_eager is True, not False"),
        ({"visibility_timeout": 600}, "redis", "the visibility timeouts differ"),
        ({}, "evicting", "maxmemory-policy allkeys-lru, not noeviction"),
    ],
    ids=[
        "acks-late",
        "reject-on-worker-lost",
        "prefetch",
        "cancel-on-connection-loss",
        "eager",
        "visibility",
        "eviction",
    ],
)
def test_s49_the_worker_refuses_to_start_with_an_unsafe_setting(
    request: pytest.FixtureRequest, tmp_path: Path, celery: dict[str, Any], broker: str, refusal: str
) -> None:
    broker_url = {
        "embedded": lambda: "",
        "redis": lambda: str(request.getfixturevalue("redis_url")),
        "evicting": lambda: request.getfixturevalue("evicting_redis").url,
    }[broker]()
    environment = {**unstarted_environment(tmp_path, broker_url), "POISON_CELERY": json.dumps(celery)}
    started = command(environment, "worker", module=POISON)
    assert started.returncode == 2, started.stderr
    assert "unsafe worker configuration, refusing to start" in started.stderr and refusal in started.stderr
    assert started.stderr.count("\n") <= 2  # the reason on one line (and any warning), not a traceback


def test_s49_a_redis_without_an_append_only_file_is_a_warning_and_the_worker_starts(
    tmp_path: Path, private_redis: RedisServer, processes: Processes
) -> None:
    stack = Stack(make_settings(tmp_path, sqlite_url(tmp_path), private_redis.url))  # --appendonly no
    try:
        processes.start("worker", ["worker"], stack.env())
        wait_until(
            lambda: heartbeats(stack), timeout=90, what="the worker to start: " + processes.log("worker")
        )
        assert "accrual: warning: the broker's Redis has appendonly no, not yes" in processes.log("worker")
    finally:
        stack.close()
