"""Pipeline throughput of Accrual: a burst of applications through API, outbox, relay, broker and worker.

Usage (from the project directory, with the project's virtual environment):

    python bench/pipeline.py [--count 10000] [--steady-count 1000] [--steady-rate 50] [--connections 8]
    python bench/pipeline.py --count 500 --steady-count 200 --redis-db 9 --keep
    python bench/pipeline.py --sqlite --count 500

Issue 7, benchmark 3: "10,000 applications submitted as fast as possible, time until the last is
decided, with 2 worker processes on PostgreSQL + Redis; and submission-to-decision latency (median,
p95) at a steady 50 applications/s. Reference: a no-op Celery task and a task doing one SELECT + UPDATE
on the same broker and database. Target: decisions per second at least 60% of the SELECT + UPDATE
task's rate; median latency under 100 ms."

Set-up: a new PostgreSQL database on postgresql+psycopg://postgres@127.0.0.1:5432 (dropped WITH
(FORCE) afterwards) and, as the broker and the rate limits' store, a redis-server of the benchmark's
own on a free loopback port (no persistence, as the shared server runs; stopped afterwards), or with
--redis-db N the database N of the shared Redis at 127.0.0.1:6379 (flushed before and after). Not a
database of the shared server by default: the test suite takes its databases 2..15 in turn, flushing
each before and after a test, and a test run beside the benchmark emptied its queues. `accrual db
upgrade`, `accrual seed` and a coordinator token for the first site of NCT06359912. Processes, each in
its own process group with its output in a log file of a temporary directory (their tails are printed
if one fails): `accrual api` (gunicorn, ACCRUAL_API_WORKERS x ACCRUAL_API_THREADS, default 2 x 4),
`accrual worker` (one Celery worker, prefork pool of --worker-concurrency processes, default 2: "2 worker
processes") and `accrual beat` (the outbox relay). Every other setting is Accrual's default, but the
intake rate limits (1000000/minute, so the limiter never refuses) and ACCRUAL_LOG_LEVEL=WARNING.

The measured runs, in this order:

1. references, before: --count `bench.noop` tasks, then --count `bench.select_update` tasks (one
   SELECT and one UPDATE of the task's own row of a table in the same database, in one transaction),
   each run by the Celery worker of bench/pipeline_tasks.py: Accrual's own Celery configuration
   (acks_late, prefetch multiplier 1, max tasks per child ...), the same --worker-concurrency, prefork,
   the options `accrual worker` gives Celery, on the same Redis database and PostgreSQL database, while
   no Accrual process runs. For each run, 50 warm-up tasks and then the --count measured ones are
   published in a burst from this process (send_task on one pooled producer, as the relay publishes)
   while no worker runs, and then the worker is started: its rate is not bounded by how fast one
   process can publish. The run is timed from when the warm-up tasks are done (the broker holds at most
   --count of the queue's messages) to when the broker holds none, neither queued nor unacknowledged
   (Redis: LLEN of the queue + HLEN of kombu's `unacked` hash); tasks per second = count / that time.
   The SELECT + UPDATE run also checks that every row was updated exactly once.
2. Accrual: api, worker and beat started; 20 applications submitted and decided as a warm-up.
3. steady: --steady-count applications (default 1000) POSTed at --steady-rate per second (default 50),
   open loop (each at its scheduled time, from 4 sender threads with a keep-alive connection each).
   Latency per application: from just before its POST was sent (this process's clock) to its
   `decided_at` (stamped by the worker when it records the decision; same machine, same clock); and,
   server side alone, `decided_at - submitted_at` (stamped by intake). Target: median under 100 ms.
4. burst: --count applications (default 10000) POSTed as fast as the API takes them over
   --connections keep-alive connections (default 8: the API's 2 x 4 threads), WHILE the worker and the
   relay run. Decisions per second = count / (the last `decided_at` - the first POST sent): the time
   until the last is decided, as the issue asks, API included. Why submit through HTTP while the
   worker runs, rather than store the burst first and start the worker after: that is what the
   pipeline does when a network of sites submits at once, every stage sharing the same 2 CPUs; a burst
   stored first would leave intake and its CPU out and measure the relay and worker alone. Which stage
   bounds the figure is printed beside it: the intake rate of the burst, the decisions made while
   intake still ran, and the rate of the backlog left when it ended. Target: decisions per second at
   least 60 % of the SELECT + UPDATE reference's tasks per second (the mean of its two runs).
5. checks: every application (warm-up, steady, burst) accepted with 202 is decided exactly once: one
   `screenings` row and one `application.screened` event each (as tests/integration/test_pipeline.py
   assert_decided_exactly_once checks), every decision `eligible` (the applicant is), no event dead;
   then the broker is drained (the counting tasks of each decision) and the processes stopped.
6. references, after: the two reference runs again, so that a change in the machine's load during the
   long pipeline run shows; the ratio uses the mean of the before and after runs.

For each run the CPU time of each process group (read from /proc; Linux only; pool processes replaced
after worker_max_tasks_per_child included), of the database's PostgreSQL backends (those still
connected at the end of the run: a backend whose pool process was replaced is missed) and of the Redis
server (INFO cpu; with --redis-db the whole shared server) is printed per task or per decision, as a
first look at where the time goes.

--sqlite: the embedded defaults instead (a SQLite file, kombu's SQLAlchemy transport over a second
SQLite file as the broker): the same runs; there a reference run's times are taken from the visible
messages of its queue (kombu's SQLAlchemy transport keeps no record of a delivered message not yet
acknowledged), so the at most --worker-concurrency tasks in flight at the end are not waited for.

Everything started is stopped (SIGTERM, SIGKILL after 30 s), the database dropped and the Redis
database flushed, whatever happens, Ctrl-C and SIGTERM included. Exit status: 0 when both targets are
met and every check passes, 1 when a target is missed, 2 when something cannot be set up, an
application is not decided (no decision for 120 s) or a check fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sqlite3
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # run as a script from anywhere

from sqlalchemy import Engine, bindparam, create_engine, func, select, text  # noqa: E402

from bench.common import (  # noqa: E402
    HOST,
    TRIAL,
    BenchError,
    Child,
    Client,
    accrual_cli,
    accrual_command,
    add_redis_db_option,
    backend_pids,
    check_running,
    clean_env,
    cpu_model,
    cpu_ms,
    load_average,
    package_version,
    pids_in_group,
    postgres_settings,
    private_redis,
    process_ticks,
    redis_database,
    redis_version,
    spawn,
    start_http_server,
    stats,
    stop_child,
    throwaway_database,
    wait_for,
    workspace,
)
from tests.support.applicants import eligible_applicant  # noqa: E402

UNLIMITED = "1000000/minute"
APPLICATIONS_PATH = "/api/v1/applications"
ACCRUAL_QUEUES = ("screening", "default", "notifications")
REFERENCE_QUEUE = "bench_reference"  # bench/pipeline_tasks.QUEUE (not imported: it reads the settings)
NOOP, SELECT_UPDATE = "bench.noop", "bench.select_update"
REFERENCE_TABLE = "bench_reference_rows"
WARMUP = 20
REFERENCE_WARMUP = 50
STEADY_SENDERS = 4
START_TIMEOUT = 120.0  # for processes to start and decide (or run) their warm-up
STALL_TIMEOUT = 120.0  # no new decision (or task done) for this long: something is wrong
POLL = 0.02
RATIO_TARGET = 0.6
MEDIAN_TARGET_MS = 100.0


class Interrupted(Exception):
    """SIGTERM, turned into an exception so that everything is cleaned up as for Ctrl-C."""


TERMINATED = threading.Event()


def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    TERMINATED.set()  # raised inside a driver's call, the exception may come out as another one
    raise Interrupted("SIGTERM")


# --- the back-end ---------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    database_url: str
    broker_url: str
    description: str
    versions: str
    private_redis: bool = False

    @property
    def postgres(self) -> bool:
        return self.name == "postgres"


def base_env(workdir: Path, args: argparse.Namespace) -> dict[str, str]:
    env = clean_env()
    env["ACCRUAL_DATA_DIR"] = str(workdir / "data")
    env["ACCRUAL_LOG_LEVEL"] = args.log_level
    env["ACCRUAL_WORKER_CONCURRENCY"] = str(args.worker_concurrency)
    env["ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN"] = UNLIMITED
    env["ACCRUAL_RATE_LIMIT_INTAKE_PER_ADDRESS"] = UNLIMITED
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH", "")]))
    return env


@contextmanager
def postgres_backend(workdir: Path, args: argparse.Namespace) -> Iterator[Backend]:
    redis_cm = private_redis(workdir) if args.redis_db is None else redis_database(args.redis_db)
    with throwaway_database("pipeline") as database_url, redis_cm as redis_url:
        env = base_env(workdir, args)
        env["ACCRUAL_DATABASE_URL"] = database_url
        env["ACCRUAL_BROKER_URL"] = redis_url
        settings = postgres_settings("server_version", "synchronous_commit", "fsync")
        yield Backend(
            "postgres",
            env,
            database_url,
            redis_url,
            f"PostgreSQL database {database_url.rsplit('/', 1)[1]} + Redis broker {redis_url}"
            + (" (a redis-server of its own)" if args.redis_db is None else " (the shared server)"),
            f"PostgreSQL {settings['server_version'].split()[0]} (synchronous_commit="
            f"{settings['synchronous_commit']}, fsync={settings['fsync']}), Redis {redis_version(redis_url)}",
            private_redis=args.redis_db is None,
        )


@contextmanager
def sqlite_backend(workdir: Path, args: argparse.Namespace) -> Iterator[Backend]:
    data_dir = workdir / "data"
    yield Backend(
        "sqlite",
        base_env(workdir, args),
        f"sqlite:///{data_dir / 'accrual.db'}",
        f"sqla+sqlite:///{data_dir / 'broker.db'}",
        f"SQLite file + embedded kombu/SQLite broker in {data_dir}",
        f"SQLite {sqlite3.sqlite_version}",
    )


class Broker:
    """How many messages of some queues the broker still holds."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._redis: Any = None
        self._engine: Engine | None = None
        # A private redis-server serves this benchmark alone; the shared one serves everybody.
        self.label = "Redis" if backend.private_redis else "Redis (whole shared server)"
        if backend.postgres:
            import redis

            self._redis = redis.Redis.from_url(backend.broker_url, socket_connect_timeout=3)
        else:
            self._engine = create_engine(backend.broker_url.removeprefix("sqla+"))

    def pending(self, queues: tuple[str, ...]) -> int:
        """Redis: queued messages of `queues` plus every unacknowledged one; the embedded broker:
        visible messages of `queues` (it keeps no record of the ones delivered and not acknowledged)."""
        if self._redis is not None:
            pipe = self._redis.pipeline()
            for queue in queues:
                pipe.llen(queue)
            pipe.hlen("unacked")
            return int(sum(pipe.execute()))
        assert self._engine is not None
        query = text(
            "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id"
            " WHERE m.visible = 1 AND q.name IN :names"
        ).bindparams(bindparam("names", expanding=True))
        try:
            with self._engine.connect() as connection:
                return int(connection.execute(query, {"names": list(queues)}).scalar_one())
        except Exception:  # the tables do not exist before the first message
            return 0

    def clients(self) -> str:
        """Who else uses the Redis database, for a failure's message: another user's test
        (tests/support/servers.py picks a database in 2..15 and flushes it) may empty it or take its tasks."""
        if self._redis is None or self.backend.private_redis:
            return ""
        index = self._redis.connection_pool.connection_kwargs.get("db", 0)
        clients = [c for c in self._redis.client_list() if int(c.get("db", -1)) == index]
        return (
            f"\n({len(clients)} Redis connections on database {index}, this benchmark's among them: "
            "a test run by someone else that picked the same database can flush it or consume its tasks; "
            "--redis-db chooses another)"
        )

    def cpu_ms(self) -> float:
        """CPU time the whole Redis server has used so far (NaN for the embedded broker)."""
        if self._redis is None:
            return float("nan")
        info = self._redis.info("cpu")
        return (float(info["used_cpu_sys"]) + float(info["used_cpu_user"])) * 1000

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        if self._engine is not None:
            self._engine.dispose()


# --- CPU accounting -------------------------------------------------------------------------------


class CpuMeter:
    """CPU time of process groups, of the database's PostgreSQL backends and of the Redis server,
    between start() and stop()."""

    def __init__(self, backend: Backend, broker: Broker, groups: dict[str, Child]) -> None:
        self.backend, self.broker, self.groups = backend, broker, groups
        self.before: dict[str, dict[int, int]] = {}
        self.redis_before = float("nan")
        self.used: dict[str, float] = {}

    def _snapshot(self) -> dict[str, dict[int, int]]:
        ticks = {
            name: process_ticks(pids_in_group(child.process.pid), reaped=True)
            for name, child in self.groups.items()
        }
        if self.backend.postgres:
            ticks["PostgreSQL"] = process_ticks(backend_pids(self.backend.database_url))
        return ticks

    def start(self) -> None:
        self.before = self._snapshot()
        self.redis_before = self.broker.cpu_ms()

    def stop(self) -> None:
        after = self._snapshot()
        self.used = {
            name: cpu_ms(self.before.get(name, {}), ticks) if ticks else 0.0 for name, ticks in after.items()
        }
        if self.backend.postgres:
            self.used[self.broker.label] = self.broker.cpu_ms() - self.redis_before

    def per(self, count: int) -> str:
        if not self.used or count <= 0:
            return "-"
        parts = [f"{name} {value / count:.2f}" for name, value in self.used.items()]
        total = sum(value for value in self.used.values() if value == value)  # NaN is not equal to itself
        return ", ".join(parts) + f"; total {total / count:.2f} ms"


# --- the reference tasks --------------------------------------------------------------------------


@dataclass
class ReferenceRun:
    task: str
    when: str
    count: int
    seconds: float = float("nan")
    publish_seconds: float = float("nan")
    cpu: str = "-"
    check: str = ""
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


def reference_app(backend: Backend) -> Any:
    """The reference tasks' Celery app, made in this process to publish them (bench/pipeline_tasks.py
    reads its settings from the environment; this process has no ACCRUAL_* variable of its own)."""
    os.environ.update({k: v for k, v in backend.env.items() if k.startswith("ACCRUAL_")})
    from bench import pipeline_tasks

    return pipeline_tasks.app


def reset_reference_table(engine: Engine, count: int) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {REFERENCE_TABLE}"
                " (id INTEGER PRIMARY KEY, hits INTEGER NOT NULL, done_at TIMESTAMP WITH TIME ZONE)"
            )
        )
        connection.execute(text(f"DELETE FROM {REFERENCE_TABLE}"))  # noqa: S608 - a constant
        connection.execute(
            text(f"INSERT INTO {REFERENCE_TABLE} (id, hits) VALUES (:id, 0)"),  # noqa: S608 - a constant
            [{"id": i} for i in range(1, count + 1)],
        )


def check_reference_table(engine: Engine, count: int) -> str:
    with engine.connect() as connection:
        query = text(f"SELECT hits, count(*) FROM {REFERENCE_TABLE} GROUP BY hits")  # noqa: S608
        hits = {int(h): int(n) for h, n in connection.execute(query)}
    ok = hits == {1: count}
    return f"rows updated once: {hits.get(1, 0)} of {count}" + ("" if ok else f" (hits: {hits}) FAILED")


def publish(app: Any, task: str, count: int) -> float:
    """`count` tasks `task(1..count)` on one pooled producer, as the relay publishes; seconds taken."""
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for i in range(1, count + 1):
            app.send_task(task, args=[i], queue=REFERENCE_QUEUE, producer=producer)
    return time.perf_counter() - started


def wait_pending(
    broker: Broker, queues: tuple[str, ...], at_most: int, children: list[Child], what: str
) -> float:
    """Wait until the broker holds at most `at_most` of the queues' messages; time.time() when it was
    first seen so. BenchError if a child exits or the count does not move for STALL_TIMEOUT."""
    last, moved = broker.pending(queues), time.monotonic()
    while last > at_most:
        time.sleep(POLL)
        now = broker.pending(queues)
        if now != last:
            last, moved = now, time.monotonic()
        if time.monotonic() - moved > STALL_TIMEOUT:
            raise BenchError(
                f"{what}: {now} messages left and none taken for {STALL_TIMEOUT:.0f} s:\n"
                + "\n".join(c.titled_tail(15) for c in children)
            )
        check_running(children, what)
    return time.time()


def run_references(
    backend: Backend, broker: Broker, workdir: Path, args: argparse.Namespace, when: str
) -> list[ReferenceRun]:
    """One run of each reference task; the reference worker is started for each, after its tasks are
    published, and stopped after."""
    app = reference_app(backend)
    engine = create_engine(backend.database_url)
    runs = [ReferenceRun(NOOP, when, args.count), ReferenceRun(SELECT_UPDATE, when, args.count)]
    print(f"\n== references ({when}): {' and '.join(r.task for r in runs)}, {args.count} each", flush=True)
    try:
        for run in runs:
            run_reference(run, app, engine, backend, broker, workdir, args)
            show_reference(run)
    except BenchError as exc:
        for run in runs:
            if run.seconds != run.seconds:  # NaN: not measured
                run.error = str(exc)
        print(f"   ERROR: {exc}", flush=True)
    finally:
        engine.dispose()
    return runs


def run_reference(
    run: ReferenceRun,
    app: Any,
    engine: Engine,
    backend: Backend,
    broker: Broker,
    workdir: Path,
    args: argparse.Namespace,
) -> None:
    """REFERENCE_WARMUP + count tasks published while no worker consumes them; then the reference
    worker started. The run is timed from when the warm-up tasks are done (at most `count` messages
    left: the worker is up, its pool processes have run tasks) to when the broker holds none."""
    total = REFERENCE_WARMUP + run.count
    if run.task == SELECT_UPDATE:
        reset_reference_table(engine, total)
    run.publish_seconds = publish(app, run.task, total)
    command = [sys.executable, "-m", "celery", "-A", "bench.pipeline_tasks", "worker"]
    command += ["--queues", REFERENCE_QUEUE, "--concurrency", str(args.worker_concurrency)]
    command += ["--pool", "prefork", "--loglevel", args.log_level, "--without-gossip", "--without-mingle"]
    log_name = f"reference-{run.when}-{run.task.removeprefix('bench.')}.log"
    worker = spawn("reference worker", command, backend.env, workdir, log_name)
    try:
        queues = (REFERENCE_QUEUE,)
        first = wait_pending(broker, queues, run.count, [worker], f"the warm-up of {run.task}")
        meter = CpuMeter(backend, broker, {"worker": worker})
        meter.start()
        done = wait_pending(broker, queues, 0, [worker], f"the {run.task} run")
        meter.stop()
        run.seconds = done - first
        run.cpu = meter.per(run.count)
        if run.task == SELECT_UPDATE:
            run.check = check_reference_table(engine, total)
            if "FAILED" in run.check:
                run.error = run.check
    finally:
        stop_child(worker)


def show_reference(run: ReferenceRun) -> None:
    print(
        f"   {run.task:<20} {run.count} tasks in {run.seconds:6.2f} s: {run.rate:8.1f} per s "
        f"(all published first, in {run.publish_seconds:.2f} s){'; ' + run.check if run.check else ''}",
        flush=True,
    )
    print(f"   {'':<20} CPU ms per task: {run.cpu}", flush=True)


# --- submitting -----------------------------------------------------------------------------------


@dataclass
class Submissions:
    """What one phase's POSTs did: accepted screening ids with the time each POST was sent."""

    sent_at: dict[str, float] = field(default_factory=dict)  # accepted: screening id -> time.time()
    refused: Counter[str] = field(default_factory=Counter)
    post_ms: list[float] = field(default_factory=list)
    first: float = float("nan")
    last_answer: float = float("nan")
    max_lag_ms: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def seconds(self) -> float:
        return self.last_answer - self.first

    def note(self, screening_id: str, sent: float, status: int | str, took: float) -> None:
        with self.lock:
            if status == 202:
                self.sent_at[screening_id] = sent
                self.post_ms.append(took * 1000)
            else:
                self.refused[str(status)] += 1


def post(client: Client, site: str, screening_id: str, result: Submissions) -> None:
    body = {"trial_id": TRIAL, "site_id": site, "applicant": eligible_applicant(screening_id)}
    sent = time.time()
    started = time.perf_counter()
    try:
        status: int | str = client.call("POST", APPLICATIONS_PATH, body)[0]
    except Exception as exc:  # a failed request is counted, not retried: it may have been stored
        status = type(exc).__name__
        client.close()
    result.note(screening_id, sent, status, time.perf_counter() - started)


def in_threads(count: int, work: Callable[[int], None]) -> None:
    """`work(k)` for k in 0..count-1, each in a thread; re-raises the first exception."""
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            work(k)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def submit_burst(api: Child, token: str, site: str, prefix: str, count: int, connections: int) -> Submissions:
    """`count` applications as fast as the API takes them, over `connections` keep-alive connections."""
    result = Submissions()
    numbers = iter(range(count))
    take = threading.Lock()

    def sender(_k: int) -> None:
        client = Client(HOST, api.port, token, timeout=60)
        try:
            while True:
                with take:
                    n = next(numbers, None)
                if n is None:
                    return
                post(client, site, f"{prefix}-{n:05d}", result)
        finally:
            client.close()

    result.first = time.time()
    in_threads(connections, sender)
    result.last_answer = time.time()
    return result


def submit_steady(api: Child, token: str, site: str, prefix: str, count: int, rate: float) -> Submissions:
    """`count` applications, the n-th sent at start + n / rate (open loop), from STEADY_SENDERS threads."""
    result = Submissions()
    start = time.perf_counter() + 0.1

    def sender(k: int) -> None:
        client = Client(HOST, api.port, token, timeout=60)
        try:
            for n in range(k, count, STEADY_SENDERS):
                lag = time.perf_counter() - (start + n / rate)
                if lag < 0:
                    time.sleep(-lag)
                else:
                    with result.lock:
                        result.max_lag_ms = max(result.max_lag_ms, lag * 1000)
                post(client, site, f"{prefix}-{n:05d}", result)
        finally:
            client.close()

    result.first = time.time() + 0.1
    in_threads(STEADY_SENDERS, sender)
    result.last_answer = time.time()
    return result


# --- the state ------------------------------------------------------------------------------------


class State:
    """Read-only queries on Accrual's database (no clinical data is read: no keys are needed)."""

    def __init__(self, url: str) -> None:
        from models.db import Database

        self.db = Database(url)

    def undecided(self, prefix: str) -> int:
        from models import Application

        with self.db.reading() as session:
            query = (
                select(func.count())
                .select_from(Application)
                .where(Application.screening_id.like(f"{prefix}-%"), Application.decided_at.is_(None))
            )
            return int(session.scalar(query) or 0)

    def stamps(self, prefix: str) -> dict[str, tuple[datetime, datetime | None]]:
        """screening id -> (submitted_at, decided_at) of the applications whose id starts with prefix."""
        from models import Application

        with self.db.reading() as session:
            rows = session.execute(
                select(Application.screening_id, Application.submitted_at, Application.decided_at).where(
                    Application.screening_id.like(f"{prefix}-%")
                )
            ).all()
        return {screening_id: (submitted, decided) for screening_id, submitted, decided in rows}

    def exactly_once(self) -> tuple[int, Counter[str], int, int, Counter[str]]:
        """(applications, their decisions, those without exactly one screening, those without exactly
        one application.screened event, events by status)."""
        from models import Application, Event, Screening

        with self.db.reading() as session:
            applications = int(session.scalar(select(func.count()).select_from(Application)) or 0)
            decisions = Counter(
                {
                    str(decision): int(n)
                    for decision, n in session.execute(
                        select(Application.decision, func.count()).group_by(Application.decision)
                    )
                }
            )
            screenings = dict(
                session.execute(
                    select(Screening.application_id, func.count()).group_by(Screening.application_id)
                ).all()
            )
            screened = dict(
                session.execute(
                    select(Event.application_id, func.count())
                    .where(Event.type == "application.screened")
                    .group_by(Event.application_id)
                ).all()
            )
            ids = list(session.scalars(select(Application.id)))
            events = Counter(
                {
                    str(status): int(n)
                    for status, n in session.execute(
                        select(Event.status, func.count()).group_by(Event.status)
                    )
                }
            )
        not_one_screening = sum(screenings.get(i, 0) != 1 for i in ids) + len(set(screenings) - set(ids))
        not_one_event = sum(screened.get(i, 0) != 1 for i in ids) + len(set(screened) - set(ids))
        return applications, decisions, not_one_screening, not_one_event, events

    def counted_eligible(self) -> int:
        from models.reporting import StatusCount

        with self.db.reading() as session:
            query = select(func.sum(StatusCount.count)).where(StatusCount.status == "eligible")
            return int(session.scalar(query) or 0)

    def pending_events(self) -> int:
        from models import Event

        with self.db.reading() as session:
            query = select(func.count()).select_from(Event).where(Event.status == "pending")
            return int(session.scalar(query) or 0)

    def first_site(self) -> str:
        from models import Site

        with self.db.reading() as session:
            site = session.scalar(
                select(Site.site_id)
                .where(Site.trial_id == TRIAL, Site.status == "RECRUITING")
                .order_by(Site.name)
            )
        if site is None:
            raise BenchError(f"no recruiting site of {TRIAL} after `accrual seed`")
        return str(site)

    def close(self) -> None:
        self.db.dispose()


def wait_decided(
    state: State, broker: Broker, prefix: str, expected: int, children: list[Child], what: str
) -> None:
    """Until no application of `prefix` is undecided; BenchError if none is decided for STALL_TIMEOUT,
    or a process exits. Progress every 15 s."""
    last, moved, shown = state.undecided(prefix), time.monotonic(), time.monotonic()
    while last:
        time.sleep(0.25)
        check_running(children, what, 15)
        now = state.undecided(prefix)
        if now != last:
            last, moved = now, time.monotonic()
        if time.monotonic() - moved > STALL_TIMEOUT:
            raise BenchError(
                f"{what}: {now} of {expected} undecided and none decided for {STALL_TIMEOUT:.0f} s"
                f"{broker.clients()}:\n" + "\n".join(c.titled_tail(15) for c in children)
            )
        if time.monotonic() - shown > 15:
            shown = time.monotonic()
            print(f"   ... {expected - now} of {expected} decided; load average {load_average()}", flush=True)


# --- the pipeline ---------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    submitted: Submissions
    latency_ms: list[float] = field(default_factory=list)  # POST sent -> decided_at
    server_ms: list[float] = field(default_factory=list)  # decided_at - submitted_at
    last_decided: float = float("nan")
    decided_while_submitting: int = 0
    cpu: str = "-"

    @property
    def accepted(self) -> int:
        return len(self.submitted.sent_at)

    @property
    def decisions_per_s(self) -> float:
        """Accepted applications / (the last decision - the first POST sent)."""
        span = self.last_decided - self.submitted.first
        return self.accepted / span if span > 0 else float("nan")

    @property
    def backlog_rate(self) -> float:
        """Decisions per second after intake finished, of the applications undecided then."""
        span = self.last_decided - self.submitted.last_answer
        left = self.accepted - self.decided_while_submitting
        return left / span if span > 0 and left > 0 else float("nan")


def measure_phase(state: State, phase: Phase, prefix: str) -> None:
    stamps = state.stamps(prefix)
    decided_times = []
    for screening_id, sent in phase.submitted.sent_at.items():
        submitted_at, decided_at = stamps.get(screening_id, (None, None))
        if submitted_at is None or decided_at is None:
            continue  # the checks count what is missing or undecided
        decided = decided_at.timestamp()
        decided_times.append(decided)
        phase.latency_ms.append((decided - sent) * 1000)
        phase.server_ms.append((decided_at - submitted_at).total_seconds() * 1000)
    phase.last_decided = max(decided_times, default=float("nan"))
    phase.decided_while_submitting = sum(t <= phase.submitted.last_answer for t in decided_times)


@dataclass
class Outcome:
    backend: Backend | None = None
    before: list[ReferenceRun] = field(default_factory=list)
    after: list[ReferenceRun] = field(default_factory=list)
    steady: Phase | None = None
    burst: Phase | None = None
    checks: list[tuple[str, bool]] = field(default_factory=list)
    error: str | None = None


def run_pipeline(
    backend: Backend, broker: Broker, workdir: Path, args: argparse.Namespace, outcome: Outcome
) -> None:
    env = backend.env
    print("\n== Accrual: accrual api, accrual worker, accrual beat", flush=True)
    state = State(backend.database_url)
    children: list[Child] = []
    try:
        site = state.first_site()
        output = accrual_cli(env, workdir, "token", "create", "--role", "coordinator", "--site", site)
        token = output.strip().splitlines()[-1].strip()
        api = start_http_server("accrual api", accrual_command("api"), env, workdir, "api.log", START_TIMEOUT)
        children.append(api)
        worker = spawn("accrual worker", accrual_command("worker"), env, workdir, "worker.log")
        beat = spawn("accrual beat", accrual_command("beat"), env, workdir, "beat.log")
        children += [worker, beat]
        tag = os.urandom(3).hex()
        warm = submit_burst(api, token, site, f"W{tag}", WARMUP, 4)
        if len(warm.sent_at) != WARMUP:
            raise BenchError(f"warm-up: POSTs refused: {dict(warm.refused)}\n{api.titled_tail()}")
        wait_decided(state, broker, f"W{tag}", WARMUP, children, "the warm-up decisions")
        print(f"   api on {api.base_url}; warm-up: {WARMUP} applications decided", flush=True)
        groups = {"api": api, "worker": worker, "beat": beat}

        if args.steady_count:
            print(f"\n== steady: {args.steady_count} applications at {args.steady_rate:g} per s", flush=True)
            meter = CpuMeter(backend, broker, groups)
            meter.start()
            steady = Phase(
                "steady", submit_steady(api, token, site, f"S{tag}", args.steady_count, args.steady_rate)
            )
            wait_decided(state, broker, f"S{tag}", steady.accepted, children, "the steady run")
            meter.stop()
            measure_phase(state, steady, f"S{tag}")
            steady.cpu = meter.per(steady.accepted)
            outcome.steady = steady
            show_phase(steady)

        print(
            f"\n== burst: {args.count} applications as fast as the API takes them, over "
            f"{args.connections} connections, while the worker and the relay run",
            flush=True,
        )
        meter = CpuMeter(backend, broker, groups)
        meter.start()
        burst = Phase("burst", submit_burst(api, token, site, f"B{tag}", args.count, args.connections))
        print(
            f"   {burst.accepted} accepted in {burst.submitted.seconds:.1f} s "
            f"({burst.accepted / burst.submitted.seconds:.1f} per s); waiting for the decisions",
            flush=True,
        )
        wait_decided(state, broker, f"B{tag}", burst.accepted, children, "the burst")
        meter.stop()
        measure_phase(state, burst, f"B{tag}")
        burst.cpu = meter.per(burst.accepted)
        outcome.burst = burst
        show_phase(burst)

        print("\n== checks", flush=True)
        wait_for(
            lambda: state.pending_events() == 0, START_TIMEOUT, "every event to be published", children, 0.25
        )
        wait_pending(broker, ACCRUAL_QUEUES, 0, children, "draining Accrual's queues")
        outcome.checks = checks(state, warm, outcome)
        for what, ok in outcome.checks:
            print(f"   {'ok ' if ok else 'FAILED'} {what}", flush=True)
    finally:
        for child in reversed(children):
            stop_child(child, whole_group=child.name == "accrual api")
        if children:
            codes = ", ".join(f"{c.log_path.stem} {c.process.returncode}" for c in children)
            print(f"   processes stopped (exit status: {codes})", flush=True)
        state.close()


def checks(state: State, warm: Submissions, outcome: Outcome) -> list[tuple[str, bool]]:
    phases = [p for p in (outcome.steady, outcome.burst) if p is not None]
    accepted = len(warm.sent_at) + sum(p.accepted for p in phases)
    refused = sum(sum(p.submitted.refused.values()) for p in phases) + sum(warm.refused.values())
    applications, decisions, not_one_screening, not_one_event, events = state.exactly_once()
    # The counting consumer is the last to run (on application.screened): give it a moment.
    deadline = time.monotonic() + 30
    while state.counted_eligible() != applications and time.monotonic() < deadline:
        time.sleep(0.5)
    counted = state.counted_eligible()
    return [
        (f"{accepted} POSTs answered 202, {refused} otherwise", refused == 0),
        (f"{applications} applications stored, {accepted} accepted", applications == accepted),
        (f"decisions: {dict(decisions)}", decisions == Counter({"eligible": applications})),
        (f"applications without exactly one screening: {not_one_screening}", not_one_screening == 0),
        (f"applications without exactly one application.screened event: {not_one_event}", not_one_event == 0),
        (f"events by status: {dict(events)}", set(events) == {"published"}),
        (f"recruitment counters: {counted} eligible counted", counted == applications),
    ]


def show_phase(phase: Phase) -> None:
    sub = phase.submitted
    print(
        f"   {phase.accepted} accepted (refused: {dict(sub.refused) or 0}); POSTs {sub.seconds:.1f} s, "
        f"{phase.accepted / sub.seconds:.1f} per s, POST median {stats(sub.post_ms)['median']:.1f} ms"
        + (f", at most {sub.max_lag_ms:.0f} ms behind schedule" if phase.name == "steady" else ""),
        flush=True,
    )
    print(
        f"   last decision {phase.last_decided - sub.first:.1f} s after the first POST: "
        f"{phase.decisions_per_s:.1f} decisions per s; {phase.decided_while_submitting} decided while "
        f"POSTs went on, the other {phase.accepted - phase.decided_while_submitting} in "
        f"{max(0.0, phase.last_decided - sub.last_answer):.1f} s after ({phase.backlog_rate:.1f} per s)",
        flush=True,
    )
    print(latency_line("POST sent -> decided_at", phase.latency_ms), flush=True)
    print(latency_line("submitted_at -> decided_at (server)", phase.server_ms), flush=True)
    print(f"   CPU ms per decision: {phase.cpu}", flush=True)


def latency_line(label: str, values: list[float]) -> str:
    s = stats(values)
    return (
        f"   {label:<36} median {s['median']:8.1f}  p95 {s['p95']:8.1f}  p99 {s['p99']:8.1f}  "
        f"max {s['max']:8.1f}  ms"
    )


# --- reporting ------------------------------------------------------------------------------------


def mean_rate(runs: list[ReferenceRun], task: str) -> float:
    rates = [r.rate for r in runs if r.task == task and r.error is None and r.rate == r.rate]
    return sum(rates) / len(rates) if rates else float("nan")


def summary(outcome: Outcome, args: argparse.Namespace) -> int:
    print("\nSummary")
    if outcome.backend is not None:
        print(f"   {outcome.backend.description}; {outcome.backend.versions}")
    runs = outcome.before + outcome.after
    for task in (NOOP, SELECT_UPDATE):
        each = ", ".join(f"{r.when} {r.rate:.1f}" for r in runs if r.task == task)
        print(f"   reference {task:<20} {mean_rate(runs, task):8.1f} tasks per s (runs: {each or '-'})")
    verdict = 0
    burst = outcome.burst
    if burst is not None:
        select_update = mean_rate(runs, SELECT_UPDATE)
        ratio = burst.decisions_per_s / select_update
        met = ratio >= RATIO_TARGET
        verdict = max(verdict, 0 if met else 1)
        print(
            f"   pipeline burst of {burst.accepted}: {burst.decisions_per_s:8.1f} decisions per s "
            f"(first POST -> last decision {burst.last_decided - burst.submitted.first:.1f} s; intake "
            f"{burst.accepted / burst.submitted.seconds:.1f} per s)"
        )
        s = stats(burst.latency_ms)
        print(
            f"   burst latency, POST sent -> decided_at (queueing behind the burst): "
            f"p50 {s['median']:.0f} ms, p95 {s['p95']:.0f} ms, p99 {s['p99']:.0f} ms"
        )
        print(
            f"   ratio to SELECT + UPDATE: {ratio * 100:.1f} % (target >= {RATIO_TARGET * 100:.0f} %)  "
            f"{'PASS' if met else 'FAIL'}; to the no-op: "
            f"{burst.decisions_per_s / mean_rate(runs, NOOP) * 100:.1f} %"
        )
        print(
            f"   (diagnostic) the backlog left when intake ended, "
            f"{burst.accepted - burst.decided_while_submitting} applications, decided at "
            f"{burst.backlog_rate:.1f} per s: "
            f"{burst.backlog_rate / select_update * 100:.1f} % of SELECT + UPDATE"
        )
    steady = outcome.steady
    if steady is not None:
        s, server = stats(steady.latency_ms), stats(steady.server_ms)
        met = s["median"] < MEDIAN_TARGET_MS
        verdict = max(verdict, 0 if met else 1)
        print(
            f"   steady {args.steady_rate:g} per s, POST sent -> decided_at: median {s['median']:.1f} ms, "
            f"p95 {s['p95']:.1f} ms, p99 {s['p99']:.1f} ms (server side: median {server['median']:.1f} ms, "
            f"p95 {server['p95']:.1f} ms)  target median < {MEDIAN_TARGET_MS:.0f} ms  "
            f"{'PASS' if met else 'FAIL'}"
        )
    failed = [what for what, ok in outcome.checks if not ok]
    if outcome.checks:
        print(f"   exactly once: {'every check passed' if not failed else 'FAILED: ' + '; '.join(failed)}")
    if outcome.error or failed or burst is None or any(r.error for r in runs):
        return 2
    return verdict


def header(args: argparse.Namespace) -> None:
    cpu = cpu_model()
    print("Accrual pipeline throughput: API -> outbox -> relay -> broker -> worker -> decision")
    print(
        f"machine:  {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; everything "
        f"shares these CPUs; load average now {load_average()}"
    )
    names = ("celery", "kombu", "redis", "SQLAlchemy", "psycopg", "gunicorn")
    print(
        f"versions: Python {platform.python_version()}, "
        + ", ".join(f"{name} {package_version(name)}" for name in names)
    )
    print(
        f"settings: accrual worker and the reference worker: prefork, concurrency {args.worker_concurrency}, "
        f"Accrual's Celery configuration (acks_late, prefetch multiplier 1); accrual api: gunicorn "
        f"gthread, its default workers x threads; log level {args.log_level}"
    )
    print(
        f"runs:     references {args.count} x no-op and {args.count} x SELECT + UPDATE, before and after; "
        f"steady {args.steady_count} at {args.steady_rate:g} per s; burst {args.count} over "
        f"{args.connections} connections"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--count", type=int, default=10000, help="burst size, and reference tasks of each kind"
    )
    parser.add_argument(
        "--steady-count", type=int, default=1000, help="applications at the steady rate (0: none)"
    )
    parser.add_argument("--steady-rate", type=float, default=50.0, help="per second (default 50)")
    parser.add_argument(
        "--connections", type=int, default=8, help="POSTing connections in the burst (default 8)"
    )
    parser.add_argument("--worker-concurrency", type=int, default=2, help="pool processes of each worker (2)")
    parser.add_argument(
        "--sqlite", action="store_true", help="the embedded defaults instead of PostgreSQL + Redis"
    )
    add_redis_db_option(parser)
    parser.add_argument("--log-level", default="WARNING", help="of every process started (default WARNING)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory with the logs")
    args = parser.parse_args(argv)
    if args.count < 1 or args.steady_count < 0 or args.steady_rate <= 0 or args.connections < 1:
        parser.error(
            "--count and --connections must be at least 1, --steady-count at least 0, --steady-rate above 0"
        )
    if args.worker_concurrency < 1:
        parser.error("--worker-concurrency must be at least 1")
    signal.signal(signal.SIGTERM, on_sigterm)
    header(args)
    outcome = Outcome()
    try:
        with ExitStack() as stack:
            workdir = stack.enter_context(
                workspace("pipeline", args.keep, "the logs and, with --sqlite, the data directory")
            )
            backend_cm = sqlite_backend if args.sqlite else postgres_backend
            backend = stack.enter_context(backend_cm(workdir, args))
            outcome.backend = backend
            print(f"\n== {backend.description} ({backend.versions})", flush=True)
            for command in (("db", "upgrade"), ("seed",)):
                accrual_cli(backend.env, workdir, *command)
            broker = Broker(backend)
            stack.callback(broker.close)
            outcome.before = run_references(backend, broker, workdir, args, "before")
            run_pipeline(backend, broker, workdir, args, outcome)
            outcome.after = run_references(backend, broker, workdir, args, "after")
            print("\n== clean-up", flush=True)
    except (BenchError, KeyboardInterrupt, Interrupted) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        print(f"ERROR: {outcome.error}", flush=True)
    except Exception as exc:
        if not TERMINATED.is_set():
            traceback.print_exc()
        outcome.error = "Interrupted: SIGTERM" if TERMINATED.is_set() else f"{type(exc).__name__}: {exc}"
        print(f"ERROR: {outcome.error}", flush=True)
    verdict = summary(outcome, args)
    print(f"load average (1, 5, 15 min) at the end: {load_average()}")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
