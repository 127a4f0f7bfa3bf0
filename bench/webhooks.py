"""Webhook delivery latency of Accrual: from an event's commit to the receiver's 2xx, over 1,000 events.

Usage (from the project directory, with the project's virtual environment):

    python bench/webhooks.py [--sqlite] [--events 1000] [--rate 5] [--dispatch-interval SECONDS]
    python bench/webhooks.py --redis-db 9 --log-level INFO --keep

The benchmark migrates and seeds a fresh state, creates an admin token and, through the API (Flask test
client), a webhook subscription to `trial.status_changed` pointing at a loopback HTTP receiver in this
process (tests/webhook_receiver.py; it answers 200 and notes when each request arrived). It then starts
`accrual worker` and `accrual beat` (outbox relay and webhook dispatcher) as subprocesses and:

1. warms up with 5 events that are not counted, waiting until the receiver has all of them;
2. times 200 signed POSTs to the same receiver sent from this process with services.webhooks.send()
   (what a worker does per attempt, without the database and the broker) as a reference;
3. writes `--events` `trial.status_changed` events at a steady `--rate` per second, each in its own
   transaction through services.outbox.add_event (what an admin's PATCH of a trial's status writes: the
   event and, in the same transaction, its webhook delivery row), noting time.time() just after each
   commit; the rate is kept low enough that this measures latency, not the draining of a backlog.

Per event: latency = the receiver's arrival time of the request whose `webhook-id` is the event's id,
minus the event's commit time (one clock: the receiver is a thread of this process). Printed: median,
p95, p99 and max in ms, how many arrived, and none may be missing or arrive twice. Beside them, from
the same run: the median of the reference POSTs and the dispatcher's polling interval
(ACCRUAL_WEBHOOK_DISPATCH_INTERVAL_SECONDS, 0.5 s unless --dispatch-interval says otherwise): a due
delivery waits up to one interval, half of one on average, for the dispatcher's next pass.

Back-ends:
- default: a new database on postgresql+psycopg://postgres@127.0.0.1:5432 (dropped afterwards WITH
  (FORCE)) and Redis at redis://127.0.0.1:6379/<db> as the broker, with <db> in 2..15 (the first empty
  one unless --redis-db says which), flushed before and after;
- --sqlite: a temporary data directory and the embedded defaults (no ACCRUAL_DATABASE_URL or
  ACCRUAL_BROKER_URL): the state in a SQLite file, the broker kombu's SQLAlchemy transport over SQLite.
Both with ACCRUAL_WEBHOOK_ALLOW_PRIVATE=true (the receiver is plain http on loopback) and every other
setting at its default. The worker's and beat's output go to worker.log and beat.log in the temporary
directory (their tails are printed if something fails). The exit status is 1 when an event is not
delivered within 60 s of the last commit, is delivered twice or a delivery does not end succeeded, 2
when the back-end cannot be set up or the processes do not deliver the warm-up events, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import func, select

from config import Settings
from models import Role, WebhookAttempt, WebhookDelivery
from models.db import Database
from models.migrate import upgrade
from services import create_app
from services.outbox import add_event
from services.seed import seed
from services.tokens import create_token
from services.webhooks import Request, new_secret, send
from tests.webhook_receiver import Receiver

TRIAL = "NCT06359912"
EVENT_TYPE = "trial.status_changed"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_BASE_URL = "redis://127.0.0.1:6379"
REDIS_DB_RANGE = range(2, 16)
WARMUP = 5
REFERENCE_POSTS = 200
START_TIMEOUT = 90.0  # for the warm-up events: the worker and beat start, connect and deliver them
DELIVERY_TIMEOUT = 60.0  # after the last commit, for every measured event to arrive
RECORD_TIMEOUT = 30.0  # after the last arrival, for the worker to record every delivery as succeeded
STOP_TIMEOUT = 30.0
WAIT_STEP = 0.05


class BenchError(Exception):
    """The back-end could not be set up, or the worker and beat did not deliver the warm-up events."""


# --- processes ------------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name}.log (last {lines} lines)\n" + "\n".join(text.splitlines()[-lines:])


def start_child(workdir: Path, command: str, env: dict[str, str]) -> Child:
    """`accrual <command>` in its own process group, its output in workdir/<command>.log, cwd workdir."""
    log_path = workdir / f"{command}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", command],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(command, process, log_path)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_child(child: Child) -> bool:
    """SIGTERM to the child, SIGKILL to whatever is left of its process group after STOP_TIMEOUT;
    whether SIGKILL was needed.

    SIGTERM goes to the child alone, not to its group: a Celery worker then stops its pool itself. A
    pool process killed by a signal of its own while it holds the pool's queue lock leaves the worker's
    main process waiting for that lock at exit (billiard's _help_stuff_finish) until SIGKILL.
    """
    pgid = child.process.pid
    killed = False
    if child.process.poll() is None:
        child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    with suppress(subprocess.TimeoutExpired):
        child.process.wait(STOP_TIMEOUT)
    # The worker's main process may be gone while a pool process of its group still lingers.
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
        killed = True
    with suppress(subprocess.TimeoutExpired):
        child.process.wait(5)
    return killed


def exited(children: list[Child]) -> Child | None:
    return next((c for c in children if c.process.poll() is not None), None)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, children: list[Child]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if (gone := exited(children)) is not None:
            raise BenchError(
                f"accrual {gone.name} exited with {gone.process.returncode} while waiting for {what}:\n"
                + "\n".join(c.log_tail() for c in children)
            )
        time.sleep(WAIT_STEP)
    raise BenchError(
        f"timed out after {timeout:.0f} s waiting for {what}:\n" + "\n".join(c.log_tail() for c in children)
    )


# --- back-ends ------------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    description: str
    versions: str


def base_env(data_dir: Path, args: argparse.Namespace, secret_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCRUAL_")}
    env["ACCRUAL_DATA_DIR"] = str(data_dir)
    env["ACCRUAL_LOG_LEVEL"] = args.log_level
    env["ACCRUAL_SECRET_KEY"] = secret_key  # the subscription's secret is sealed under it by this process
    env["ACCRUAL_WEBHOOK_ALLOW_PRIVATE"] = "true"
    if args.dispatch_interval is not None:
        env["ACCRUAL_WEBHOOK_DISPATCH_INTERVAL_SECONDS"] = str(args.dispatch_interval)
    return env


@contextmanager
def sqlite_backend(workdir: Path, args: argparse.Namespace, secret_key: str) -> Iterator[Backend]:
    data_dir = workdir / "data"
    yield Backend(
        "sqlite",
        base_env(data_dir, args, secret_key),
        f"SQLite file + embedded kombu/SQLite broker in {data_dir}",
        f"SQLite {sqlite3.sqlite_version}",
    )


def pick_redis_db(requested: int | None) -> int:
    import redis

    if requested is not None:
        return requested
    for index in REDIS_DB_RANGE:
        client = redis.Redis.from_url(f"{REDIS_BASE_URL}/{index}", socket_connect_timeout=3)
        try:
            if client.dbsize() == 0:
                return index
        finally:
            client.close()
    raise BenchError(f"every Redis database {REDIS_DB_RANGE.start}..{REDIS_DB_RANGE.stop - 1} holds keys")


@contextmanager
def postgres_backend(workdir: Path, args: argparse.Namespace, secret_key: str) -> Iterator[Backend]:
    import redis
    from sqlalchemy import create_engine, text

    name = f"accrual_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            pg_version = connection.execute(text("SHOW server_version")).scalar()
    except Exception as exc:
        admin.dispose()
        raise BenchError(f"cannot create a database on {PG_ADMIN_URL}: {type(exc).__name__}: {exc}") from exc
    try:
        try:
            index = pick_redis_db(args.redis_db)
            redis_url = f"{REDIS_BASE_URL}/{index}"
            client = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
            client.flushdb()
            redis_version = client.info("server").get("redis_version", "?")
        except redis.RedisError as exc:
            raise BenchError(f"cannot use Redis at {REDIS_BASE_URL}: {type(exc).__name__}: {exc}") from exc
        try:
            env = base_env(workdir / "data", args, secret_key)
            env["ACCRUAL_DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
            env["ACCRUAL_BROKER_URL"] = redis_url
            yield Backend(
                "postgres",
                env,
                f"PostgreSQL database {name} + Redis broker {redis_url}",
                f"PostgreSQL {pg_version}, Redis {redis_version}",
            )
        finally:
            client.flushdb()
            client.close()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def settings_for(backend: Backend) -> Settings:
    """This process's settings: those the worker and beat read from backend.env."""
    env = backend.env
    overrides: dict[str, Any] = {}
    if "ACCRUAL_WEBHOOK_DISPATCH_INTERVAL_SECONDS" in env:
        overrides["webhook_dispatch_interval_seconds"] = float(
            env["ACCRUAL_WEBHOOK_DISPATCH_INTERVAL_SECONDS"]
        )
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=Path(env["ACCRUAL_DATA_DIR"]),
        database_url=env.get("ACCRUAL_DATABASE_URL", ""),
        broker_url=env.get("ACCRUAL_BROKER_URL", ""),
        secret_key=env["ACCRUAL_SECRET_KEY"],
        webhook_allow_private=True,
        log_level=env["ACCRUAL_LOG_LEVEL"],
        **overrides,
    )


# --- setting up -----------------------------------------------------------------------------------


def prepare(db: Database, settings: Settings, url: str) -> str:
    """Migrate, seed, make an admin token and subscribe `url` to trial.status_changed; its secret."""
    upgrade(db)
    with db.transaction() as session:
        seed(session)
        admin = create_token(session, Role.ADMIN, name="webhook benchmark")
    client = create_app(settings, db).test_client()
    response = client.post(
        "/api/v1/webhooks",
        json={"url": url, "event_types": [EVENT_TYPE]},
        headers={"Authorization": f"Bearer {admin}"},
    )
    if response.status_code != 201:
        raise BenchError(f"POST /api/v1/webhooks answered {response.status_code}: {response.get_json()}")
    return str(response.get_json()["secret"])


# --- measuring ------------------------------------------------------------------------------------


def status_change(i: int) -> dict[str, Any]:
    """The data of an admin's status change; alternately closing and re-opening the trial."""
    before, after = (
        ("RECRUITING", "ACTIVE_NOT_RECRUITING") if i % 2 == 0 else ("ACTIVE_NOT_RECRUITING", "RECRUITING")
    )
    return {"from": before, "to": after, "reason": "changed_by_admin", "by": "webhook-benchmark"}


def write_event(db: Database, i: int) -> tuple[str, float, float]:
    """One event in its own transaction: (event id, time.time() just after the commit, transaction ms)."""
    started = time.perf_counter()
    with db.transaction() as session:
        event_id = add_event(session, EVENT_TYPE, trial_id=TRIAL, data=status_change(i)).id
    committed = time.time()
    return event_id, committed, (time.perf_counter() - started) * 1000


def arrivals(receiver: Receiver) -> dict[str, list[float]]:
    """Arrival times per webhook-id, in arrival order."""
    with receiver._lock:
        received = list(receiver.received)
    seen: dict[str, list[float]] = {}
    for r in received:
        seen.setdefault(r.headers.get("webhook-id", ""), []).append(r.at)
    return seen


@dataclass
class Result:
    backend: str = ""
    description: str = ""
    versions: str = ""
    interval_s: float = math.nan
    concurrency: int = 0
    latency_ms: list[float] = field(default_factory=list)
    reference_ms: list[float] = field(default_factory=list)
    worker_post_ms: list[float] = field(default_factory=list)
    write_ms: list[float] = field(default_factory=list)
    written: int = 0
    writing_s: float = math.nan
    max_lag_ms: float = 0.0
    missing: int = 0
    duplicated: int = 0
    unexpected: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    signatures: str = "not checked"
    slowest: list[tuple[float, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        not_succeeded = sum(n for status, n in self.statuses.items() if status != "succeeded")
        return bool(self.missing or self.duplicated or self.unexpected or not_succeeded)


def reference_posts(receiver: Receiver, settings: Settings, count: int) -> list[float]:
    """`count` signed POSTs to the receiver through services.webhooks.send(), as a worker sends one."""
    secret = new_secret()
    times = []
    for i in range(count):
        message_id = f"ref_{i:04d}_{secrets.token_hex(4)}"
        body = {
            "id": message_id,
            "type": EVENT_TYPE,
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "trial_id": TRIAL,
            "data": status_change(i),
        }
        request = Request(receiver.url, message_id, json.dumps(body, separators=(",", ":")).encode(), secret)
        response = send(request, settings)
        if not response.succeeded:
            raise BenchError(f"reference POST {i} failed: {response.status_code} {response.error}")
        times.append(response.latency_ms)
    return times


def verify_signatures(receiver: Receiver, secret: str, ids: set[str]) -> str:
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError:
        return "not checked (standardwebhooks is not installed)"
    hook, bad = Webhook(secret), 0
    checked = [r for r in receiver.received if r.headers.get("webhook-id") in ids]
    for r in checked:
        try:
            hook.verify(r.body, r.headers)
        except Exception:
            bad += 1
    return f"{len(checked) - bad} of {len(checked)} verify" + (f", {bad} DO NOT" if bad else "")


def delivery_records(db: Database, ids: set[str]) -> tuple[Counter[str], int, list[float]]:
    """The measured deliveries' statuses, their attempts and each attempt's POST time as the worker saw it."""
    with db.reading() as session:
        statuses = Counter(
            status
            for event_id, status in session.execute(select(WebhookDelivery.event_id, WebhookDelivery.status))
            if event_id in ids
        )
        rows = session.execute(
            select(WebhookDelivery.event_id, WebhookAttempt.latency_ms).join(
                WebhookAttempt, WebhookAttempt.delivery_id == WebhookDelivery.id
            )
        ).all()
    posts = [float(latency) for event_id, latency in rows if event_id in ids]
    return statuses, len(posts), posts


def succeeded_count(db: Database) -> int:
    with db.reading() as session:
        query = select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "succeeded")
        return int(session.scalar(query) or 0)


def measure(
    db: Database,
    settings: Settings,
    receiver: Receiver,
    secret: str,
    children: list[Child],
    args: argparse.Namespace,
) -> Result:
    result = Result()
    # 1. warm-up: also the proof that the worker and beat are up and delivering.
    warm = {write_event(db, i)[0] for i in range(WARMUP)}
    wait_for(
        lambda: warm <= arrivals(receiver).keys(),
        START_TIMEOUT,
        f"the {WARMUP} warm-up deliveries",
        children,
    )
    # 2. the reference: one signed POST, as a worker sends it, without the database and the broker.
    print(f"   reference: {REFERENCE_POSTS} signed POSTs from this process", flush=True)
    result.reference_ms = reference_posts(receiver, settings, REFERENCE_POSTS)
    # 3. the measured events at a steady rate.
    print(f"   writing {args.events} {EVENT_TYPE} events at {args.rate:g}/s", flush=True)
    commits: dict[str, float] = {}
    start = time.perf_counter()
    for i in range(args.events):
        lag = time.perf_counter() - (start + i / args.rate)
        if lag < 0:
            time.sleep(-lag)
        else:
            result.max_lag_ms = max(result.max_lag_ms, lag * 1000)
        event_id, committed, took = write_event(db, WARMUP + i)
        commits[event_id] = committed
        result.write_ms.append(took)
        if exited(children) is not None:
            break
    result.written = len(commits)
    result.writing_s = time.perf_counter() - start
    measured = set(commits)
    deadline_note = f"all {len(measured)} measured deliveries"
    try:
        wait_for(lambda: measured <= arrivals(receiver).keys(), DELIVERY_TIMEOUT, deadline_note, children)
        wait_for(
            lambda: succeeded_count(db) >= len(measured) + len(warm),
            RECORD_TIMEOUT,
            "the worker to record every delivery as succeeded",
            children,
        )
    except BenchError as exc:
        result.error = str(exc)
        print(f"   ERROR: {exc.args[0].splitlines()[0]}", flush=True)
    time.sleep(max(1.0, 2 * settings.webhook_dispatch_interval_seconds))  # room for a late duplicate
    seen = arrivals(receiver)
    for event_id, committed in commits.items():
        times = seen.get(event_id, [])
        if not times:
            result.missing += 1
            continue
        result.duplicated += len(times) > 1
        result.latency_ms.append((times[0] - committed) * 1000)
        result.slowest.append((result.latency_ms[-1], event_id))
    expected = measured | warm
    result.unexpected = sum(
        len(t) for event_id, t in seen.items() if event_id not in expected and not event_id.startswith("ref_")
    )
    result.duplicated += sum(len(seen.get(event_id, [])) > 1 for event_id in warm)
    result.statuses, result.attempts, result.worker_post_ms = delivery_records(db, measured)
    result.signatures = verify_signatures(receiver, secret, measured)
    return result


@contextmanager
def workspace(keep: bool) -> Iterator[Path]:
    """A temporary directory for the processes' logs (and the SQLite files), removed unless `keep`."""
    if keep:
        path = Path(tempfile.mkdtemp(prefix="accrual-bench-webhooks-"))
        yield path
        print(f"   kept {path} (worker.log, beat.log and, with --sqlite, the data directory)", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="accrual-bench-webhooks-") as tmp:
        yield Path(tmp)


def run(args: argparse.Namespace) -> Result:
    backend_cm = sqlite_backend if args.sqlite else postgres_backend
    secret_key = secrets.token_urlsafe(32)
    with workspace(args.keep) as workdir:
        try:
            with backend_cm(workdir, args, secret_key) as backend:
                print(f"\n== {backend.name}: {backend.description} ({backend.versions})", flush=True)
                settings = settings_for(backend)
                db = Database(settings.database_url)
                receiver = Receiver().start()
                children: list[Child] = []
                try:
                    secret = prepare(db, settings, receiver.url)
                    children = [start_child(workdir, name, backend.env) for name in ("worker", "beat")]
                    print(
                        f"   receiver on {receiver.url}; accrual worker and accrual beat started", flush=True
                    )
                    result = measure(db, settings, receiver, secret, children, args)
                finally:
                    for child in children:
                        started = time.monotonic()
                        if stop_child(child):
                            print(
                                f"   accrual {child.name} needed SIGKILL after "
                                f"{time.monotonic() - started:.0f} s:\n{child.log_tail(15)}",
                                flush=True,
                            )
                    if children:
                        codes = ", ".join(f"{c.name} {c.process.returncode}" for c in children)
                        print(f"   processes stopped (exit status: {codes})", flush=True)
                    receiver.stop()
                    db.dispose()
                result.backend, result.description, result.versions = (
                    backend.name,
                    backend.description,
                    backend.versions,
                )
                result.interval_s = settings.webhook_dispatch_interval_seconds
                result.concurrency = settings.worker_concurrency
                return result
        except BenchError as exc:
            print(f"   ERROR: {exc}", flush=True)
            return Result(backend="postgres" if not args.sqlite else "sqlite", error=str(exc))


# --- reporting ------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {k: math.nan for k in ("median", "p95", "p99", "max")}
    return {
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def line(label: str, values: list[float]) -> str:
    s = stats(values)
    return (
        f"   {label:<40} n={len(values):<4} median={s['median']:8.1f}  p95={s['p95']:8.1f}  "
        f"p99={s['p99']:8.1f}  max={s['max']:8.1f}  ms"
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def report(result: Result) -> None:
    print(f"\n-- {result.backend}: {result.description}")
    if result.versions:
        print(f"   servers: {result.versions}; accrual worker concurrency {result.concurrency} (prefork)")
    if result.error:
        print(f"   ERROR: {result.error.splitlines()[0]}")
    if not result.written:
        return
    print(
        f"   delivered: {len(result.latency_ms)} of {result.written} events; missing {result.missing}, "
        f"duplicated {result.duplicated}, unexpected {result.unexpected}"
    )
    print(line("event commit -> receiver (answers 200)", result.latency_ms))
    interval_ms = result.interval_s * 1000
    print(
        f"   reference: one signed POST from this process (services.webhooks.send), median of "
        f"{len(result.reference_ms)}: {median(result.reference_ms):8.2f} ms "
        f"(p95 {percentile(result.reference_ms, 95) if result.reference_ms else math.nan:.2f})"
    )
    print(
        f"   reference: dispatcher polling interval {interval_ms:.0f} ms: a due delivery waits "
        f"0-{interval_ms:.0f} ms for the next pass, {interval_ms / 2:.0f} ms on average"
    )
    print(
        f"   (diagnostic) POST as timed by the worker (webhook_attempts.latency_ms), median of "
        f"{len(result.worker_post_ms)}: {median(result.worker_post_ms):8.2f} ms"
    )
    print(
        f"   (diagnostic) event write transaction, median of {len(result.write_ms)}: "
        f"{median(result.write_ms):8.2f} ms; {result.written} written in {result.writing_s:.1f} s "
        f"({result.written / result.writing_s:.1f}/s), at most {result.max_lag_ms:.1f} ms behind schedule"
    )
    tenth = max(1, len(result.latency_ms) // 10)
    first, last = median(result.latency_ms[:tenth]), median(result.latency_ms[-tenth:])
    growing = "  <- growing: deliveries fall behind the rate" if last > 2 * first + 100 else ""
    print(
        f"   (diagnostic) latency of the first and the last {tenth} events, medians: {first:8.1f} and "
        f"{last:8.1f} ms{growing}"
    )
    slowest = ", ".join(f"{event_id} {ms:.0f} ms" for ms, event_id in sorted(result.slowest)[-3:][::-1])
    print(f"   (diagnostic) slowest: {slowest or '-'}")
    print(
        f"   deliveries: {dict(result.statuses) or '-'}; attempts recorded: {result.attempts}; "
        f"signatures: {result.signatures}"
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def versions() -> str:
    names = ("celery", "kombu", "SQLAlchemy", "httpx", "redis", "psycopg")
    found = []
    for name in names:
        with suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sqlite", action="store_true", help="the embedded defaults instead of PostgreSQL + Redis"
    )
    parser.add_argument("--events", type=int, default=1000, help="measured events (default 1000)")
    parser.add_argument("--rate", type=float, default=5.0, help="events written per second (default 5)")
    parser.add_argument(
        "--dispatch-interval",
        type=float,
        help="ACCRUAL_WEBHOOK_DISPATCH_INTERVAL_SECONDS for accrual beat (default: the setting's default)",
    )
    parser.add_argument(
        "--redis-db",
        type=int,
        choices=list(REDIS_DB_RANGE),
        help="Redis database index for PostgreSQL + Redis (default: the first empty one in 2..15)",
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="ACCRUAL_LOG_LEVEL for the worker and beat (default WARNING)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory with the logs (and SQLite files)"
    )
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    if args.rate <= 0:
        parser.error("--rate must be above 0")
    if args.dispatch_interval is not None and not 0 < args.dispatch_interval <= 60:
        parser.error("--dispatch-interval must be in (0, 60] seconds")
    print(
        f"Accrual webhook delivery latency: {args.events} {EVENT_TYPE} events written at {args.rate:g}/s "
        f"after {WARMUP} warm-up ones, each timed from its commit to its arrival at a loopback receiver "
        f"that answers 200; one subscription; accrual worker + accrual beat as subprocesses",
        flush=True,
    )
    print(
        f"on: {'SQLite + embedded broker' if args.sqlite else 'PostgreSQL + Redis'}; {versions()}; "
        f"Python {platform.python_version()}; {os.cpu_count()} CPUs; {load()}",
        flush=True,
    )
    result = run(args)
    report(result)
    print(f"   {load()} at the end (the machine is shared with whatever else runs on it)")
    if result.written and (result.failed or result.written < args.events):
        print("   FAILED: an event is missing, duplicated or not succeeded")
        return 1
    if result.error:
        return 2 if not result.written else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
