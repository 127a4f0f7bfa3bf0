"""Webhook delivery latency of Accrual: from an event's commit to the receiver's 2xx, over 1,000 events.

Usage (from the project directory, with the project's virtual environment):

    python bench/webhooks.py [--sqlite] [--events 1000] [--rate 5] [--dispatch-interval SECONDS]
    python bench/webhooks.py --redis-db 9 --log-level INFO --keep

The benchmark migrates and seeds a fresh state, creates an admin token and, through the API (Flask test
client), a webhook subscription to `trial.status_changed` pointing at a loopback HTTP receiver in this
process (tests/support/webhook_receiver.py; it answers 200 and notes when each request arrived). It then
starts `accrual worker` and `accrual beat` (outbox relay and webhook dispatcher) as subprocesses and:

1. warms up with 5 events that are not counted, waiting until the receiver has all of them;
2. times 200 signed POSTs to the same receiver sent from this process with webhooks.send()
   (what a worker does per attempt, without the database and the broker) as a reference;
3. writes `--events` `trial.status_changed` events at a steady `--rate` per second, each in its own
   transaction through services.events.outbox.add_event (what an admin's PATCH of a trial's status writes: the
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
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import func, select

from bench.common import (
    TRIAL,
    BenchError,
    Child,
    accrual_command,
    add_redis_db_option,
    clean_env,
    first_exited,
    load_average,
    median,
    package_version,
    percentile,
    postgres_settings,
    redis_database,
    redis_version,
    spawn,
    stats_line,
    stop_child,
    throwaway_database,
    workspace,
)
from bench.common import wait_for as wait_for_children
from config import Settings
from models import Role, WebhookAttempt, WebhookDelivery
from models.db import Database
from models.migrate import upgrade
from services.app import create_app
from services.events.outbox import add_event
from services.notifications.webhooks import Request, new_secret, send
from services.tokens import create_token
from services.trials.seed import seed
from tests.support.webhook_receiver import Receiver

EVENT_TYPE = "trial.status_changed"
WARMUP = 5
REFERENCE_POSTS = 200
START_TIMEOUT = 90.0  # for the warm-up events: the worker and beat start, connect and deliver them
DELIVERY_TIMEOUT = 60.0  # after the last commit, for every measured event to arrive
RECORD_TIMEOUT = 30.0  # after the last arrival, for the worker to record every delivery as succeeded
WAIT_STEP = 0.05


# --- processes ------------------------------------------------------------------------------------


def start_child(workdir: Path, command: str, env: dict[str, str]) -> Child:
    """`accrual <command>` in its own process group, its output in workdir/<command>.log, cwd workdir."""
    return spawn(f"accrual {command}", accrual_command(command), env, workdir, f"{command}.log")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, children: list[Child]) -> Any:
    return wait_for_children(condition, timeout, what, children, WAIT_STEP)


# --- back-ends ------------------------------------------------------------------------------------


@dataclass
class Backend:
    name: str
    env: dict[str, str]
    description: str
    versions: str


def base_env(data_dir: Path, args: argparse.Namespace, secret_key: str) -> dict[str, str]:
    env = clean_env()
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


@contextmanager
def postgres_backend(workdir: Path, args: argparse.Namespace, secret_key: str) -> Iterator[Backend]:
    with throwaway_database("webhooks") as database_url, redis_database(args.redis_db) as redis_url:
        env = base_env(workdir / "data", args, secret_key)
        env["ACCRUAL_DATABASE_URL"] = database_url
        env["ACCRUAL_BROKER_URL"] = redis_url
        pg_version = postgres_settings("server_version")["server_version"]
        yield Backend(
            "postgres",
            env,
            f"PostgreSQL database {database_url.rsplit('/', 1)[1]} + Redis broker {redis_url}",
            f"PostgreSQL {pg_version}, Redis {redis_version(redis_url)}",
        )


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
    """`count` signed POSTs to the receiver through webhooks.send(), as a worker sends one."""
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
        if first_exited(children) is not None:
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


def run(args: argparse.Namespace) -> Result:
    backend_cm = sqlite_backend if args.sqlite else postgres_backend
    secret_key = secrets.token_urlsafe(32)
    kept = "worker.log, beat.log and, with --sqlite, the data directory"
    with workspace("webhooks", args.keep, kept) as workdir:
        try:
            with backend_cm(workdir, args, secret_key) as backend:
                print(f"\n== {backend.name}: {backend.description} ({backend.versions})", flush=True)
                settings = settings_for(backend)
                db = Database.for_settings(settings)  # the keys the worker and beat use too
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
                                f"   {child.name} needed SIGKILL after "
                                f"{time.monotonic() - started:.0f} s:\n{child.titled_tail(15)}",
                                flush=True,
                            )
                    if children:
                        codes = ", ".join(f"{c.log_path.stem} {c.process.returncode}" for c in children)
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
    print(stats_line("event commit -> receiver (answers 200)", result.latency_ms, 40))
    interval_ms = result.interval_s * 1000
    print(
        f"   reference: one signed POST from this process (services.notifications.webhooks.send), median of "
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
    return f"load average {load_average()}"


def versions() -> str:
    names = ("celery", "kombu", "SQLAlchemy", "httpx", "redis", "psycopg")
    return ", ".join(f"{name} {package_version(name)}" for name in names if package_version(name) != "?")


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
    add_redis_db_option(parser)
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
