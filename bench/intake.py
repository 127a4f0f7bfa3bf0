"""Intake throughput and latency: POST /api/v1/applications under gunicorn on PostgreSQL, against a reference.

Usage (from the project directory, with the project's virtual environment; needs `wrk` on PATH,
`apt-get install -y wrk` on Debian):

    python bench/intake.py [--duration 10] [--concurrency 1,2,4,8,16,32]
    python bench/intake.py --duration 3 --warmup 1 --workers 4 --threads 8 --redis-db 9

Two servers run side by side and are loaded in turn with the same load generator, `wrk` (driven by
bench/intake.lua, in a second process), at each concurrency level (connections; one wrk thread unless
--wrk-threads says more) for --duration seconds, after a --warmup run at the highest level that is not
counted. Levels go up one by one; at each, both servers are loaded, one after the other, the order
alternating from one level to the next, so that a change in the machine's load falls on both alike:

- Accrual: `accrual api` (gunicorn, gthread, ACCRUAL_API_WORKERS x ACCRUAL_API_THREADS) on a fresh
  PostgreSQL database created on postgresql+psycopg://postgres@127.0.0.1:5432, prepared with `accrual db
  upgrade`, `accrual seed` and `accrual token create --role coordinator --site SITE`; Redis at
  redis://127.0.0.1:6379/<db> (<db> in 2..15, the first empty one unless --redis-db says which; flushed
  before and after) is the broker and the rate limits' store. No worker or beat runs: intake only
  stores the application, its history and its outbox event (and their audit entries). Settings:
  ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN and ..._PER_ADDRESS = 1000000/minute (so the limiter never
  refuses; it still counts every submission in Redis), ACCRUAL_LOG_LEVEL=WARNING.
- reference: bench/intake_reference.py, a bare Flask endpoint served by the same gunicorn setup (same
  workers, threads, worker class, access log) that parses the JSON body and inserts it as one JSONB row
  with SQLAlchemy Core into its own fresh database on the same PostgreSQL server, answering 202.

Every request carries the same body, `{trial_id: NCT06359912, site_id, applicant}` with the applicant of
tests/support/applicants.py, and its own screening_id (the Lua script numbers them per wrk thread), so
Accrual never answers 409 for a duplicate. Latencies are wrk's (closed loop: each connection sends its next
request when the previous answer arrives). After each wrk run the harness waits until the server's
table stops growing (the requests wrk left in flight are done), so every level starts on an idle server.

Printed: one row per concurrency level for both servers with requests/s, p50 and p99 in ms, the count
of non-2xx answers and of socket errors/timeouts, and, as a diagnostic, the CPU time per stored row of
the server's processes (gunicorn master and workers) and of its database's PostgreSQL backends (read
from /proc, so on Linux only; Redis, shared, is not counted). Then each one's peak throughput (of 2xx
answers), the ratio Accrual / reference against the target (at least 50 %), and Accrual's p99 at the
level whose throughput is closest to half of its peak, against the target (under 50 ms); that level is
looked for on the rising side of the curve only (levels up to the first that reaches half the peak),
as an overloaded level whose throughput has fallen back near half the peak is no half load. For
information, each server is also loaded once more at half its own peak, paced:
--half-load-connections connections (default: as many as give pauses of about 250 ms, at most the
highest level), each pausing a random, exponentially distributed time (capped at 1.5 s, below
gunicorn's 2 s keep-alive) before each request, its mean chosen so that the throughput comes out near
half the peak (several clients sending now and then, rather than one or two back to back); its p99 is
printed beside the verdict. A check compares the rows each database holds with the 2xx answers counted.

Servers' output goes to accrual.log and reference.log in a temporary directory (their tails are
printed if one fails). Both servers are stopped (SIGTERM, SIGKILL after 30 s), both databases dropped
WITH (FORCE) and the Redis database flushed, whatever happens. Exit status: 0 when both targets are
met, 1 when one is missed, 2 when a server cannot be set up or wrk fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # run as a script from anywhere

from bench.common import (  # noqa: E402
    REDIS_BASE_URL,
    TRIAL,
    BenchError,
    Child,
    accrual_cli,
    accrual_command,
    add_redis_db_option,
    backend_pids,
    clean_env,
    cpu_model,
    cpu_ms,
    http_call,
    load_average,
    package_version,
    pids_in_group,
    postgres_settings,
    process_ticks,
    redis_database,
    redis_version,
    start_http_server,
    stop_child,
    throwaway_database,
)
from config import Settings  # noqa: E402
from tests.support.applicants import eligible_applicant  # noqa: E402

DEFAULT_SITE = "site_5812946e17295a21a499"
UNLIMITED = "1000000/minute"
PLACEHOLDER = "__SCREENING_ID__"
LUA_SCRIPT = Path(__file__).resolve().with_name("intake.lua")
REFERENCE_APP = Path(__file__).resolve().with_name("intake_reference.py")
START_TIMEOUT = 60.0
WRK_TIMEOUT = "10s"
SETTLE_TIMEOUT = 30.0
MEAN_PAUSE_S = 0.25  # of the paced run at half load, unless --half-load-connections says otherwise
THROUGHPUT_TARGET = 0.5
P99_TARGET_MS = 50.0
APPLICATIONS_PATH = "/api/v1/applications"


# --- processes ------------------------------------------------------------------------------------


def start_server(name: str, command: list[str], env: dict[str, str], workdir: Path) -> Child:
    """`command` in its own process group (a gunicorn master and its workers), output to a log file,
    once GET /readyz answers 200."""
    return start_http_server(name, command, env, workdir, f"{name}.log", START_TIMEOUT, step=0.2)


def stop_server(server: Child) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever is left after STOP_TIMEOUT."""
    stop_child(server, whole_group=True)


# --- databases and Redis --------------------------------------------------------------------------


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """A new database on the PostgreSQL server, dropped WITH (FORCE) afterwards; yields its URL."""
    with throwaway_database(f"intake_{label}") as url:
        yield url


def count_rows(url: str, table: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            query = text(f"SELECT count(*) FROM {table}")  # noqa: S608 - table is one of two constants
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


# --- load -----------------------------------------------------------------------------------------


@dataclass
class Level:
    connections: int
    duration_s: float
    requests: int
    ok_2xx: int
    non_2xx: int
    statuses: dict[str, int]
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    think_ms: float = 0  # mean pause of each connection before each request (0: closed loop)
    app_cpu_ms: float = math.nan  # CPU time of the server's processes per stored row
    db_cpu_ms: float = math.nan  # CPU time of its database's PostgreSQL backends per stored row

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok_rps(self) -> float:
        return self.ok_2xx / self.duration_s if self.duration_s else 0.0


@dataclass
class Load:
    body_file: Path
    token: str
    duration: int
    wrk_threads: int
    tag: str


def run_wrk(url: str, load: Load, connections: int, seconds: int, prefix: str, think_ms: float = 0) -> Level:
    threads = max(1, min(load.wrk_threads, connections))
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
    command += ["--timeout", WRK_TIMEOUT, "-s", str(LUA_SCRIPT), url, "--"]
    command += [str(load.body_file), load.token, prefix]
    env = {k: v for k, v in os.environ.items() if k != "INTAKE_THINK_MS"}
    if think_ms > 0:
        env["INTAKE_THINK_MS"] = f"{think_ms:.1f}"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    found = [line for line in done.stdout.splitlines() if line.startswith("WRK_RESULT ")]
    if done.returncode != 0 or not found:
        raise BenchError(f"wrk exited with {done.returncode}:\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
    data = json.loads(found[-1].removeprefix("WRK_RESULT "))
    return Level(
        connections=connections,
        duration_s=data["duration_us"] / 1e6,
        requests=data["requests"],
        ok_2xx=data["ok_2xx"],
        non_2xx=data["non_2xx"],
        statuses=data["statuses"],
        socket_errors=sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        think_ms=think_ms,
    )


@dataclass
class Rows:
    """The rows a server's table holds; after each wrk run the harness waits until it stops growing."""

    database_url: str
    table: str
    answered: int = 0  # 2xx answers wrk counted, warm-up and the first request included
    unseen_limit: int = 0  # requests that may have been in flight when a wrk run stopped

    def count(self) -> int:
        return count_rows(self.database_url, self.table)

    def settle(self) -> None:
        """Wait until the requests wrk left in flight are done: the row count is the same twice 0.5 s
        apart (at most SETTLE_TIMEOUT), so the next run starts on an idle server."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        last = self.count()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.count()
            if now == last:
                return
            last = now

    def check(self) -> str:
        rows = self.count()
        late = rows - self.answered
        verdict = "ok" if 0 <= late <= self.unseen_limit else "UNEXPECTED"
        return (
            f"rows stored {rows} = {self.answered} 2xx answers counted by wrk + {late} finished after wrk "
            f"stopped (at most {self.unseen_limit} in flight): {verdict}"
        )


@dataclass
class Target:
    """A server under load: its wrk runs, one per concurrency level."""

    name: str
    server: Child
    load: Load
    rows: Rows
    levels: list[Level] = field(default_factory=list)
    half_load: Level | None = None  # the paced run at half the peak throughput
    stored_check: str = ""
    error: str | None = None

    @property
    def peak(self) -> Level | None:
        return max(self.levels, key=lambda level: level.ok_rps, default=None)

    def app_ticks(self) -> dict[int, int]:
        return process_ticks(pids_in_group(self.server.process.pid))

    def db_ticks(self) -> dict[int, int]:
        return process_ticks(backend_pids(self.rows.database_url))

    def run(
        self, connections: int, seconds: int, prefix: str, *, counted: bool = True, think_ms: float = 0
    ) -> Level | None:
        """One wrk run, then wait for the server to be idle; None (and no more runs) after a failure."""
        if self.error:
            return None
        rows_before, app_before, db_before = self.rows.count(), self.app_ticks(), self.db_ticks()
        try:
            level = run_wrk(
                self.server.base_url + APPLICATIONS_PATH, self.load, connections, seconds, prefix, think_ms
            )
        except BenchError as exc:
            self.error = str(exc)
            print(f"   {self.name}: ERROR: {exc}", flush=True)
            return None
        self.rows.answered += level.ok_2xx
        self.rows.unseen_limit += connections
        self.rows.settle()
        stored = self.rows.count() - rows_before
        if stored > 0:
            level.app_cpu_ms = cpu_ms(app_before, self.app_ticks()) / stored
            level.db_cpu_ms = cpu_ms(db_before, self.db_ticks()) / stored
        if counted:
            self.levels.append(level)
        return level


def measure(targets: list[Target], levels: list[int], args: argparse.Namespace) -> None:
    """Warm each server up, then every level on each server in turn (the order alternating from one
    level to the next), so that a change in the machine's load falls on both alike; then one paced run
    each at half its peak throughput."""
    print(
        f"\n== load: warm-up of {args.warmup} s at {max(levels)} connections each (not counted)", flush=True
    )
    for target in targets:
        target.rows.settle()
        if args.warmup > 0:
            target.run(max(levels), args.warmup, f"W{args.tag}{target.name[0]}", counted=False)
    for index, connections in enumerate(levels):
        for target in targets if index % 2 == 0 else targets[::-1]:
            prefix = f"B{args.tag}{target.name[0]}c{connections}"
            show(target, target.run(connections, args.duration, prefix))
    print("\n== half load: each server paced by random pauses to half its peak", flush=True)
    for target in targets:
        peak = target.peak
        if peak is None:
            continue
        # A closed system of `connections` clients, each pausing `think` on average before a request:
        # throughput = connections / (think + latency). The latency at the lowest level stands in.
        # By default as many connections as keep the mean pause near MEAN_PAUSE_S: far below gunicorn's
        # 2 s keep-alive, which would otherwise close idle connections between requests.
        goal = peak.ok_rps / 2
        connections = args.half_load_connections or max(2, min(max(levels), round(goal * MEAN_PAUSE_S)))
        latency_ms = target.levels[0].p50_ms
        think_ms = max(1.0, connections / goal * 1000 - latency_ms)
        prefix = f"H{args.tag}{target.name[0]}"
        level = target.run(connections, args.duration, prefix, counted=False, think_ms=think_ms)
        target.half_load = level
        show(target, level, f" (goal {goal:.1f}/s, mean pause {think_ms:.0f} ms)")


def show(target: Target, level: Level | None, note: str = "") -> None:
    if level is None:
        return
    extra = f"  statuses {level.statuses}" if level.statuses else ""
    print(
        f"   {target.name:<9} {level.connections:>4} connections: {level.rps:8.1f} req/s  "
        f"p50 {level.p50_ms:7.2f} ms  p99 {level.p99_ms:7.2f} ms  non-2xx {level.non_2xx}  "
        f"socket errors {level.socket_errors}  CPU per request: server {level.app_cpu_ms:.1f} ms, "
        f"PostgreSQL {level.db_cpu_ms:.1f} ms{note}{extra}",
        flush=True,
    )


# --- the two servers ------------------------------------------------------------------------------


def server_env(workers: int, threads: int) -> dict[str, str]:
    env = clean_env()
    env["ACCRUAL_API_WORKERS"] = str(workers)
    env["ACCRUAL_API_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH", "")]))
    return env


@contextmanager
def serving(name: str, command: list[str], env: dict[str, str], workdir: Path, load: Load, rows: Rows,
            site: str) -> Iterator[Target]:  # fmt: skip
    """The server started and answering a first POST with 202; stopped, and its rows checked, after."""
    server = start_server(name, command, env, workdir)
    target = None
    try:
        print(f"   {name} serving on {server.base_url}{APPLICATIONS_PATH}", flush=True)
        body = {"trial_id": TRIAL, "site_id": site, "applicant": eligible_applicant(f"FIRST-{load.tag}")}
        status, answer = http_call(server.port, "POST", APPLICATIONS_PATH, body, load.token)
        if status != 202:
            raise BenchError(f"{name}: a first POST /api/v1/applications answered {status}: {answer}")
        target = Target(name, server, load, rows)
        yield target
    finally:
        stop_server(server)
        print(f"   {name} stopped (exit status {server.process.returncode})", flush=True)
        if target is not None:
            target.stored_check = rows.check()


@contextmanager
def accrual_target(args: argparse.Namespace, redis_url: str, workdir: Path) -> Iterator[Target]:
    print("\n== Accrual: accrual api, POST /api/v1/applications", flush=True)
    with fresh_database("accrual") as database_url:
        print(f"   database {database_url.rsplit('/', 1)[1]}, broker and rate limits {redis_url}", flush=True)
        env = server_env(args.workers, args.threads)
        env["ACCRUAL_DATA_DIR"] = str(workdir / "accrual-data")
        env["ACCRUAL_DATABASE_URL"] = database_url
        env["ACCRUAL_BROKER_URL"] = redis_url
        env["ACCRUAL_LOG_LEVEL"] = "WARNING"
        env["ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN"] = UNLIMITED
        env["ACCRUAL_RATE_LIMIT_INTAKE_PER_ADDRESS"] = UNLIMITED
        accrual_cli(env, workdir, "db", "upgrade")
        accrual_cli(env, workdir, "seed")
        output = accrual_cli(env, workdir, "token", "create", "--role", "coordinator", "--site", args.site)
        load = make_load(args, workdir / "accrual-body.json", output.strip().splitlines()[-1].strip())
        command = accrual_command("api")
        rows = Rows(database_url, "applications", answered=1)
        with serving("accrual", command, env, workdir, load, rows, args.site) as target:
            yield target


@contextmanager
def reference_target(args: argparse.Namespace, workdir: Path, token: str) -> Iterator[Target]:
    print("\n== reference: bare Flask endpoint, one JSONB row with SQLAlchemy Core", flush=True)
    with fresh_database("reference") as database_url:
        print(f"   database {database_url.rsplit('/', 1)[1]}", flush=True)
        env = server_env(args.workers, args.threads)
        env["INTAKE_REFERENCE_DATABASE_URL"] = database_url
        # The same Authorization header as Accrual's requests (the same request size); it is ignored.
        load = make_load(args, workdir / "reference-body.json", token)
        rows = Rows(database_url, "submissions", answered=1)
        command = [sys.executable, str(REFERENCE_APP)]
        with serving("reference", command, env, workdir, load, rows, args.site) as target:
            yield target


def make_load(args: argparse.Namespace, body_file: Path, token: str) -> Load:
    body = {"trial_id": TRIAL, "site_id": args.site, "applicant": eligible_applicant(PLACEHOLDER)}
    body_file.write_text(json.dumps(body, separators=(",", ":")))
    return Load(body_file, token, args.duration, args.wrk_threads, args.tag)


# --- reporting ------------------------------------------------------------------------------------


def server_facts() -> str:
    facts = []
    try:
        setting = postgres_settings("server_version", "synchronous_commit", "fsync", "max_connections")
        facts.append(
            f"PostgreSQL {setting['server_version'].split()[0]} "
            f"(synchronous_commit={setting['synchronous_commit']}, "
            f"fsync={setting['fsync']}, max_connections={setting['max_connections']})"
        )
    except Exception as exc:
        facts.append(f"PostgreSQL ? ({type(exc).__name__})")
    facts.append(f"Redis {redis_version(REDIS_BASE_URL)}")
    return ", ".join(facts)


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "wrk ?"


def header(args: argparse.Namespace, levels: list[int]) -> None:
    cpu = cpu_model()
    print("Accrual intake throughput: POST /api/v1/applications vs a bare Flask + SQLAlchemy Core insert")
    print(
        f"machine:  {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; load generator,"
    )
    print(f"          servers, PostgreSQL and Redis all share these CPUs; load average now {load_average()}")
    print(
        f"versions: Python {platform.python_version()}, accrual {package_version('accrual')}, gunicorn "
        f"{package_version('gunicorn')}, Flask {package_version('flask')}, SQLAlchemy "
        f"{package_version('sqlalchemy')}, psycopg {package_version('psycopg')}, {wrk_version()}"
    )
    print(f"          {server_facts()}")
    print(
        f"settings: gunicorn gthread, {args.workers} workers x {args.threads} threads (both servers); "
        f"ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN/_PER_ADDRESS={UNLIMITED}, ACCRUAL_LOG_LEVEL=WARNING"
    )
    print(
        f"load:     wrk, {args.wrk_threads} thread(s) (at most one per connection), closed loop, "
        f"{args.duration} s per level after a {args.warmup} s warm-up; "
        f"connections {', '.join(map(str, levels))}; --timeout {WRK_TIMEOUT}"
    )


def table(accrual: Target | None, reference: Target | None, levels: list[int]) -> None:
    width = 58

    def cells(target: Target | None, connections: int) -> str:
        found = target.levels if target else []
        level = next((x for x in found if x.connections == connections), None)
        if level is None:
            return f"{'-':>8} {'-':>8} {'-':>8} {'-':>7} {'-':>7} {'-':>6} {'-':>6}"
        return (
            f"{level.rps:8.1f} {level.p50_ms:8.2f} {level.p99_ms:8.2f} {level.non_2xx:7d} "
            f"{level.socket_errors:7d} {level.app_cpu_ms:6.1f} {level.db_cpu_ms:6.1f}"
        )

    columns = (
        f"{'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} {'sockerr':>7} {'cpu:app':>6} {'pg':>6}"
    )
    print()
    print(f"{'':>5}   {'Accrual (accrual api)':<{width}}   {'reference (bare Flask + Core insert)':<{width}}")
    print(f"{'conns':>5} | {columns} | {columns}")
    print(f"{'-' * 5}-+-{'-' * width}-+-{'-' * width}")
    for connections in levels:
        print(f"{connections:>5} | {cells(accrual, connections)} | {cells(reference, connections)}")
    print("(cpu:app, pg = CPU ms per stored row: the server's processes, its database's PostgreSQL backends)")


def half_load_level(levels: list[Level], half: float) -> Level:
    """The level whose throughput is closest to `half`, among the levels up to the first that reaches it.

    Throughput need not rise with concurrency: an overloaded level whose throughput has fallen back
    near half the peak is not a half load, so levels past the first one to reach half are left out.
    """
    ordered = sorted(levels, key=lambda level: level.connections)
    first = next((i for i, level in enumerate(ordered) if level.ok_rps >= half), len(ordered) - 1)
    return min(ordered[: first + 1], key=lambda level: abs(level.ok_rps - half))


def summary(accrual: Target, reference: Target) -> bool | None:
    """Print the verdicts; True when both targets are met, False when one is missed, None if unknown."""
    print()
    for target in (accrual, reference):
        if target.error:
            print(f"{target.name}: ERROR: {target.error.splitlines()[0]}")
        if target.stored_check:
            print(f"{target.name}: {target.stored_check}")
    a_peak, r_peak = accrual.peak, reference.peak
    if a_peak is None or r_peak is None or r_peak.ok_rps == 0:
        print("no verdict: a sweep did not complete")
        return None
    print(f"peak throughput (2xx/s): Accrual {a_peak.ok_rps:.1f} at {a_peak.connections} connections, "
          f"reference {r_peak.ok_rps:.1f} at {r_peak.connections} connections")  # fmt: skip
    ratio = a_peak.ok_rps / r_peak.ok_rps
    throughput_ok = ratio >= THROUGHPUT_TARGET
    print(
        f"ratio Accrual / reference: {ratio * 100:.1f} %  (target >= {THROUGHPUT_TARGET * 100:.0f} %)  "
        f"{'PASS' if throughput_ok else 'FAIL'}"
    )
    half = a_peak.ok_rps / 2
    near = half_load_level(accrual.levels, half)
    latency_ok = near.p99_ms < P99_TARGET_MS
    print(
        f"Accrual at half its peak ({half:.1f}/s), the level closest to it on the rising side: "
        f"{near.connections} connections, {near.ok_rps:.1f}/s, p50 {near.p50_ms:.2f} ms, "
        f"p99 {near.p99_ms:.2f} ms  (target p99 < {P99_TARGET_MS:.0f} ms)  {'PASS' if latency_ok else 'FAIL'}"
    )
    for target in (accrual, reference):
        if (paced := target.half_load) is not None:
            under = "under" if paced.p99_ms < P99_TARGET_MS else "NOT under"
            print(
                f"{target.name} paced at half its peak (for information; {paced.connections} connections, "
                f"mean pause {paced.think_ms:.0f} ms): {paced.ok_rps:.1f}/s, p50 {paced.p50_ms:.2f} ms, "
                f"p99 {paced.p99_ms:.2f} ms, {under} {P99_TARGET_MS:.0f} ms"
            )
    return throughput_ok and latency_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    defaults = Settings.model_fields
    parser.add_argument("--duration", type=int, default=10, help="seconds per concurrency level (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of uncounted load first (default 3)")
    parser.add_argument("--concurrency", default="1,2,4,8,16,32", help="connection counts (default 1..32)")
    parser.add_argument(
        "--workers", type=int, default=defaults["api_workers"].default, help="gunicorn workers"
    )
    parser.add_argument("--threads", type=int, default=defaults["api_threads"].default, help="threads each")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads, at most one per connection")
    parser.add_argument(
        "--half-load-connections",
        type=int,
        help="connections of the paced run at half the peak (default: enough for pauses of ~250 ms)",
    )
    parser.add_argument("--site", default=DEFAULT_SITE, help=f"coordinator's site of {TRIAL}")
    add_redis_db_option(parser)
    args = parser.parse_args(argv)
    try:
        levels = sorted({int(part) for part in args.concurrency.split(",") if part.strip()})
    except ValueError:
        parser.error("--concurrency takes comma-separated connection counts")
    if not levels or min(levels) < 1 or args.duration < 1 or args.warmup < 0 or args.wrk_threads < 1:
        parser.error(
            "connection counts, --duration and --wrk-threads must be at least 1, --warmup at least 0"
        )
    if shutil.which("wrk") is None:
        print("bench/intake.py needs wrk on PATH (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2
    args.tag = secrets.token_hex(3)
    header(args, levels)
    accrual = reference = None
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accrual-bench-intake-")))
        try:
            redis_url = stack.enter_context(redis_database(args.redis_db))
            accrual = stack.enter_context(accrual_target(args, redis_url, workdir))
            reference = stack.enter_context(reference_target(args, workdir, accrual.load.token))
        except BenchError as exc:
            print(f"ERROR: {exc}", flush=True)
            return 2
        measure([accrual, reference], levels, args)
        print("\n== clean-up", flush=True)
    table(accrual, reference, levels)
    verdict = summary(accrual, reference)
    print(f"machine load average (1, 5, 15 min) at the end: {load_average()}")
    if verdict is None or accrual.error or reference.error:
        return 2
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
