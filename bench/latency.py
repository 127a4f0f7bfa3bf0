"""End-to-end latency of Accrual, submission -> decision, on SQLite and on PostgreSQL + Redis.

Usage (from the project directory, with the project's virtual environment):

    python bench/latency.py [--backend sqlite|postgres|both] [--count 200]
    python bench/latency.py --backend postgres --redis-db 9 --log-level INFO

For each back-end the benchmark starts `accrual serve` (API, worker and relay together) on a fresh
state, reads the coordinator token it prints on first start, and then:

1. warms up with 5 applications that are not counted;
2. times 200 `GET /healthz` round-trips (a request that touches no database or broker) as a reference;
3. submits `--count` applications ONE AFTER ANOTHER (each with its own screening_id) and, for each,
   polls `GET /api/v1/applications/{id}` every 5 ms until its status is no longer "submitted".

Per application it records:
- client-observed latency: from just before the POST is sent to the moment a GET first shows a status
  other than "submitted" (includes up to one polling interval plus one GET round-trip);
- server-side latency: `decided_at - submitted_at` from the response body (both stamped by the
  service: when intake stores the row and when the worker records the decision);
- POST alone: from just before the POST is sent until its 202 is read.
All requests go over one keep-alive `http.client.HTTPConnection`.

Back-ends:
- sqlite: a fresh temporary data directory and the embedded defaults (no ACCRUAL_DATABASE_URL or
  ACCRUAL_BROKER_URL): the state in a SQLite file, the broker kombu's SQLAlchemy transport over SQLite.
- postgres: a new database created on postgresql+psycopg://postgres@127.0.0.1:5432 (dropped afterwards
  WITH (FORCE)) and Redis at redis://127.0.0.1:6379/<db> as the broker, with <db> in 2..15 (the first
  empty one unless --redis-db says which), flushed before and after.

The service's own output goes to `serve.log` in the temporary directory (its tail is printed if it
fails to start). The exit status is 1 when any application is not decided within 30 s (that back-end's
run stops there), 2 when a back-end cannot be set up or the service does not start, 0 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from tests.applicants import eligible_applicant

HOST = "127.0.0.1"
TRIAL = "NCT06359912"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_BASE_URL = "redis://127.0.0.1:6379"
REDIS_DB_RANGE = range(2, 16)
POLL_INTERVAL = 0.005
DECISION_TIMEOUT = 30.0
WARMUP = 5
HEALTHZ_CALLS = 200
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0


class BenchError(Exception):
    """A back-end could not be set up, or the service did not start."""


class NotDecided(Exception):
    """An application was not decided within DECISION_TIMEOUT."""


# --- HTTP -----------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects once if the server closed it while idle."""

    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=10)
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, http.client.HTTPMessage]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # gunicorn closes a keep-alive connection idle for 2 s; a request sent on it never
                # reached the application, so sending it again on a new connection is safe.
                self.connection.close()
                if attempt == 2:
                    raise
        parsed = json.loads(raw) if raw else None
        return response.status, parsed, response.headers

    def close(self) -> None:
        self.connection.close()


# --- the service ----------------------------------------------------------------------------------


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    coordinator: str = ""
    site_id: str = ""

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, service: Service) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if service.process.poll() is not None:
            raise BenchError(
                f"accrual serve exited with {service.process.returncode} while waiting for {what}:\n"
                + service.log_tail()
            )
        time.sleep(0.1)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}:\n{service.log_tail()}")


def ready(port: int) -> bool:
    try:
        client = Client(HOST, port)
        try:
            return client.call("GET", "/readyz")[0] == 200
        finally:
            client.close()
    except (OSError, http.client.HTTPException, ValueError):
        return False


def start_service(workdir: Path, env: dict[str, str]) -> Service:
    """`accrual serve` in its own process group, its output in workdir/serve.log, cwd workdir."""
    port = free_port()
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "--host", HOST, "--port", str(port)],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = Service(process, port, log_path)

    def listening() -> str | None:
        text = log_path.read_text(errors="replace")
        return text if "listening on" in text else None

    output = wait_for(listening, START_TIMEOUT, "'Accrual listening on'", service)
    found = re.search(r"coordinator token:\s+(\S+) \(site (\S+)\)", output)
    if not found:
        stop_service(service)
        raise BenchError(f"no coordinator token in the output of accrual serve:\n{service.log_tail()}")
    service.coordinator, service.site_id = found.group(1), found.group(2)
    try:
        wait_for(lambda: ready(port), START_TIMEOUT, "GET /readyz to answer 200", service)
    except BenchError:
        stop_service(service)
        raise
    return service


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_service(service: Service) -> None:
    """SIGTERM to the service's process group, SIGKILL to whatever is left after STOP_TIMEOUT."""
    pgid = service.process.pid
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    with suppress(subprocess.TimeoutExpired):
        service.process.wait(STOP_TIMEOUT)
    # The supervisor may be gone while a child of the group (a pool process, say) still lingers.
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    with suppress(subprocess.TimeoutExpired):
        service.process.wait(5)


# --- back-ends ------------------------------------------------------------------------------------


def base_env(data_dir: Path, log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCRUAL_")}
    env["ACCRUAL_DATA_DIR"] = str(data_dir)
    env["ACCRUAL_LOG_LEVEL"] = log_level
    env["ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN"] = "100000/minute"  # noqa: S105 - a rate, not a secret
    return env


@contextmanager
def sqlite_backend(workdir: Path, args: argparse.Namespace) -> Iterator[tuple[dict[str, str], str]]:
    env = base_env(workdir / "data", args.log_level)
    yield env, f"SQLite file + embedded kombu/SQLite broker in {workdir / 'data'}"


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
def postgres_backend(workdir: Path, args: argparse.Namespace) -> Iterator[tuple[dict[str, str], str]]:
    import redis
    from sqlalchemy import create_engine, text

    name = f"accrual_bench_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise BenchError(f"cannot create a database on {PG_ADMIN_URL}: {type(exc).__name__}: {exc}") from exc
    try:
        try:
            index = pick_redis_db(args.redis_db)
            redis_url = f"{REDIS_BASE_URL}/{index}"
            client = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
            client.flushdb()
        except redis.RedisError as exc:
            raise BenchError(f"cannot use Redis at {REDIS_BASE_URL}: {type(exc).__name__}: {exc}") from exc
        try:
            env = base_env(workdir / "data", args.log_level)
            env["ACCRUAL_DATABASE_URL"] = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
            env["ACCRUAL_BROKER_URL"] = redis_url
            yield env, f"PostgreSQL database {name} + Redis broker {redis_url}"
        finally:
            client.flushdb()
            client.close()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


BACKENDS = {"sqlite": sqlite_backend, "postgres": postgres_backend}


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    description: str = ""
    client_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    post_ms: list[float] = field(default_factory=list)
    healthz_ms: list[float] = field(default_factory=list)
    get_ms: list[float] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)
    not_decided: str | None = None
    error: str | None = None


@dataclass
class Sample:
    client_ms: float
    server_ms: float
    post_ms: float
    decision: str
    get_ms: list[float]


def one_application(client: Client, site_id: str, screening_id: str) -> Sample:
    """Submit one applicant and poll until it is decided; every time is taken on the same clock."""
    body = {"trial_id": TRIAL, "site_id": site_id, "applicant": eligible_applicant(screening_id)}
    started = time.perf_counter()
    status, created, headers = client.call("POST", "/api/v1/applications", body)
    posted = time.perf_counter()
    if status != 202 or created.get("status") != "submitted":
        raise BenchError(f"POST /api/v1/applications answered {status}: {created}")
    location = headers.get("Location") or f"/api/v1/applications/{created['id']}"
    deadline = started + DECISION_TIMEOUT
    gets: list[float] = []
    while True:
        sent = time.perf_counter()
        status, view, _ = client.call("GET", location)
        now = time.perf_counter()
        gets.append((now - sent) * 1000)
        if status != 200:
            raise BenchError(f"GET {location} answered {status}: {view}")
        if view["status"] != "submitted":
            break
        if now >= deadline:
            raise NotDecided(f"{location} ({screening_id}) still submitted after {DECISION_TIMEOUT:.0f} s")
        time.sleep(POLL_INTERVAL)
    server = datetime.fromisoformat(view["decided_at"]) - datetime.fromisoformat(view["submitted_at"])
    return Sample(
        client_ms=(now - started) * 1000,
        server_ms=server.total_seconds() * 1000,
        post_ms=(posted - started) * 1000,
        decision=str(view["status"]),
        get_ms=gets,
    )


def healthz_round_trips(client: Client, calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        status, _, _ = client.call("GET", "/healthz")
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise BenchError(f"GET /healthz answered {status}")
    return times


def run_backend(backend: str, args: argparse.Namespace) -> Result:
    result = Result(backend)
    with tempfile.TemporaryDirectory(prefix=f"accrual-bench-{backend}-") as tmp:
        workdir = Path(tmp)
        try:
            with BACKENDS[backend](workdir, args) as (env, description):
                result.description = description
                print(f"\n== {backend}: {description}", flush=True)
                service = start_service(workdir, env)
                client = Client(HOST, service.port, service.coordinator)
                try:
                    measure(client, service, backend, args.count, result)
                finally:
                    client.close()
                    stop_service(service)
                    print(f"   service stopped (exit status {service.process.returncode})", flush=True)
        except BenchError as exc:
            result.error = str(exc)
            print(f"   ERROR: {exc}", flush=True)
    return result


def measure(client: Client, service: Service, backend: str, count: int, result: Result) -> None:
    print(f"   serving on http://{HOST}:{service.port}; warming up with {WARMUP} applications", flush=True)
    try:
        for i in range(WARMUP):
            one_application(client, service.site_id, f"WARM-{backend}-{i:03d}")
        result.healthz_ms = healthz_round_trips(client, HEALTHZ_CALLS)
        print(f"   measuring {count} sequential applications", flush=True)
        for i in range(count):
            sample = one_application(client, service.site_id, f"BENCH-{backend}-{i:04d}")
            result.client_ms.append(sample.client_ms)
            result.server_ms.append(sample.server_ms)
            result.post_ms.append(sample.post_ms)
            result.get_ms.extend(sample.get_ms)
            result.decisions[sample.decision] += 1
    except NotDecided as exc:
        result.not_decided = str(exc)
        print(f"   NOT DECIDED: {exc}; this back-end's run stops here", flush=True)


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
        f"   {label:<44} n={len(values):<4} median={s['median']:8.1f}  p95={s['p95']:8.1f}  "
        f"p99={s['p99']:8.1f}  max={s['max']:8.1f}  ms"
    )


def report(result: Result) -> None:
    print(f"\n-- {result.backend}: {result.description}")
    if result.error:
        print(f"   ERROR: {result.error.splitlines()[0]}")
    print(line("client-observed (POST sent -> GET decided)", result.client_ms))
    print(line("server-side (decided_at - submitted_at)", result.server_ms))
    healthz = statistics.median(result.healthz_ms) if result.healthz_ms else math.nan
    post = statistics.median(result.post_ms) if result.post_ms else math.nan
    print(f"   reference: GET /healthz round-trip, median of {len(result.healthz_ms)}: {healthz:8.2f} ms")
    print(f"   reference: POST /api/v1/applications -> 202, median of {len(result.post_ms)}: {post:8.2f} ms")
    polls = statistics.median(result.get_ms) if result.get_ms else math.nan
    print(f"   (diagnostic) polling GET round-trip, median of {len(result.get_ms)}: {polls:8.2f} ms")
    print(f"   decisions: {dict(result.decisions) or '-'}")
    if result.not_decided:
        print(f"   NOT DECIDED within {DECISION_TIMEOUT:.0f} s: {result.not_decided}")


def summary(results: list[Result]) -> None:
    columns = ["backend", "n", "e2e med", "e2e p95", "e2e p99", "e2e max"]
    columns += ["srv med", "srv p95", "srv p99", "srv max", "healthz", "POST 202", "ok"]
    widths = [9, 4] + [9] * 10 + [4]
    print("\nSummary (ms; e2e = client-observed with 5 ms polling, srv = decided_at - submitted_at;")
    print("         healthz and POST 202 are medians of the reference requests)")
    print("  ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in results:
        c, s = stats(r.client_ms), stats(r.server_ms)
        healthz = statistics.median(r.healthz_ms) if r.healthz_ms else math.nan
        post = statistics.median(r.post_ms) if r.post_ms else math.nan
        ok = "no" if (r.error or r.not_decided) else "yes"
        cells = [r.backend, str(len(r.client_ms))]
        cells += [f"{c[k]:.1f}" for k in ("median", "p95", "p99", "max")]
        cells += [f"{s[k]:.1f}" for k in ("median", "p95", "p99", "max")]
        cells += [f"{healthz:.2f}", f"{post:.2f}", ok]
        print("  ".join(f"{v:>{w}}" for v, w in zip(cells, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--count", type=int, default=200, help="measured applications per back-end")
    parser.add_argument(
        "--redis-db",
        type=int,
        choices=list(REDIS_DB_RANGE),
        help="Redis database index for the postgres back-end (default: the first empty one in 2..15)",
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="ACCRUAL_LOG_LEVEL for the service (default WARNING)"
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(
        f"Accrual end-to-end latency: {args.count} sequential applications per back-end after {WARMUP} "
        f"warm-up ones, polling every {POLL_INTERVAL * 1000:.0f} ms; {os.cpu_count()} CPUs; "
        f"Python {sys.version.split()[0]}",
        flush=True,
    )
    results = [run_backend(backend, args) for backend in backends]
    for result in results:
        report(result)
    summary(results)
    if any(r.not_decided for r in results):
        return 1
    if any(r.error for r in results):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
