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
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.common import (
    HOST,
    START_TIMEOUT,
    TRIAL,
    BenchError,
    Child,
    Client,
    accrual_command,
    add_redis_db_option,
    clean_env,
    median,
    redis_database,
    start_http_server,
    stats,
    stats_line,
    stop_child,
    throwaway_database,
    wait_for,
)
from tests.support.applicants import eligible_applicant

POLL_INTERVAL = 0.005
DECISION_TIMEOUT = 30.0
WARMUP = 5
HEALTHZ_CALLS = 200


class NotDecided(Exception):
    """An application was not decided within DECISION_TIMEOUT."""


# --- the service ----------------------------------------------------------------------------------


@dataclass
class Service:
    """`accrual serve` and the coordinator token (and its site) it printed on first start."""

    child: Child
    coordinator: str = ""
    site_id: str = ""

    @property
    def port(self) -> int:
        return self.child.port


def start_service(workdir: Path, env: dict[str, str]) -> Service:
    """`accrual serve` in its own process group, its output in workdir/serve.log, cwd workdir."""
    child = start_http_server(
        "accrual serve", accrual_command("serve"), env, workdir, "serve.log", tail_lines=40
    )

    def listening() -> str | None:
        text = child.log_path.read_text(errors="replace")
        return text if "listening on" in text else None

    try:
        output = wait_for(listening, START_TIMEOUT, "'Accrual listening on'", [child], tail_lines=40)
        found = re.search(r"coordinator token:\s+(\S+) \(site (\S+)\)", output)
        if not found:
            raise BenchError(f"no coordinator token in the output of accrual serve:\n{child.log_tail(40)}")
    except BaseException:
        stop_service(Service(child))
        raise
    return Service(child, found.group(1), found.group(2))


def stop_service(service: Service) -> None:
    """SIGTERM to the service's process group, SIGKILL to whatever is left after STOP_TIMEOUT."""
    stop_child(service.child, whole_group=True)


# --- back-ends ------------------------------------------------------------------------------------


def base_env(data_dir: Path, log_level: str) -> dict[str, str]:
    env = clean_env()
    env["ACCRUAL_DATA_DIR"] = str(data_dir)
    env["ACCRUAL_LOG_LEVEL"] = log_level
    env["ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN"] = "100000/minute"  # noqa: S105 - a rate, not a secret
    return env


@contextmanager
def sqlite_backend(workdir: Path, args: argparse.Namespace) -> Iterator[tuple[dict[str, str], str]]:
    env = base_env(workdir / "data", args.log_level)
    yield env, f"SQLite file + embedded kombu/SQLite broker in {workdir / 'data'}"


@contextmanager
def postgres_backend(workdir: Path, args: argparse.Namespace) -> Iterator[tuple[dict[str, str], str]]:
    with throwaway_database("latency") as database_url, redis_database(args.redis_db) as redis_url:
        env = base_env(workdir / "data", args.log_level)
        env["ACCRUAL_DATABASE_URL"] = database_url
        env["ACCRUAL_BROKER_URL"] = redis_url
        name = database_url.rsplit("/", 1)[1]
        yield env, f"PostgreSQL database {name} + Redis broker {redis_url}"


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
                    print(f"   service stopped (exit status {service.child.process.returncode})", flush=True)
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


def report(result: Result) -> None:
    print(f"\n-- {result.backend}: {result.description}")
    if result.error:
        print(f"   ERROR: {result.error.splitlines()[0]}")
    print(stats_line("client-observed (POST sent -> GET decided)", result.client_ms, 44))
    print(stats_line("server-side (decided_at - submitted_at)", result.server_ms, 44))
    healthz = median(result.healthz_ms)
    post = median(result.post_ms)
    print(f"   reference: GET /healthz round-trip, median of {len(result.healthz_ms)}: {healthz:8.2f} ms")
    print(f"   reference: POST /api/v1/applications -> 202, median of {len(result.post_ms)}: {post:8.2f} ms")
    polls = median(result.get_ms)
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
        healthz = median(r.healthz_ms)
        post = median(r.post_ms)
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
    add_redis_db_option(parser)
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
