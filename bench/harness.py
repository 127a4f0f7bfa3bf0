"""What the benchmarks share. Not a benchmark: each script in bench/ imports it.

The state and the processes are the tests' own (tests/support): a migrated, seeded Stack on a throwaway
database, a redis-server of the benchmark's own, `accrual` commands started by Processes, waiting by
wait_until. Added here is what only a benchmark needs: a run's set-up and clean-up, the load (a keep-alive
client, POSTing applications back to back or on a schedule), figures and the header.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import math
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import func, select

from models import Application, Event
from tests.support.applicants import eligible_applicant
from tests.support.processes import Processes
from tests.support.servers import RedisServer, free_port, fresh_pg_database
from tests.support.stack import TRIAL, Stack, make_settings, sqlite_url
from tests.support.templates import TEMPLATES
from tests.support.waiting import wait_until

PROJECT = Path(__file__).resolve().parents[1]
APPLICATIONS = "/api/v1/applications"
UNLIMITED = "1000000/minute"


class BenchError(Exception):
    """The set-up failed, a process the benchmark started stopped, or something did not happen in time."""


# --- running a benchmark --------------------------------------------------------------------------


def options(doc: str | None) -> argparse.ArgumentParser:
    """A script's options; --help shows its docstring, which says what it measures and against what."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def run(parser: argparse.ArgumentParser, measure: Callable[[argparse.Namespace], int]) -> NoReturn:
    """Exit with what `measure` returns (0: its target met, 1: missed), or 2 when the set-up fails, a
    process stops or Ctrl-C or SIGTERM interrupts it; everything started is stopped and dropped either way."""
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = measure(args)
    except BenchError as exc:
        print(f"ERROR: {exc}", flush=True)
        code = 2
    except KeyboardInterrupt:
        print("interrupted; the processes are stopped and the state dropped", flush=True)
        code = 2
    print(f"load average (1, 5, 15 min) at the end: {load_average()}")
    sys.exit(code)


def header(title: str, *packages: str) -> None:
    """The title, the machine and the versions, so that a figure can be read in context."""
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        names = [
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        ]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    print(title)
    print(
        f"machine:  {os.cpu_count()} CPUs ({cpu}), load average {load_average()}, {time.strftime('%F %R %Z')}"
    )
    versions = ", ".join(f"{name} {package_version(name)}" for name in packages)
    print(f"versions: Python {platform.python_version()}, {versions}", flush=True)


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


# --- the state and the processes ------------------------------------------------------------------


@dataclass
class Bench:
    """A benchmark's world: a migrated, seeded stack and the processes of the phase being run."""

    stack: Stack
    workdir: Path
    description: str
    processes: Processes | None = None

    def env(self, **settings: Any) -> dict[str, str]:
        """A child's environment on the stack's state (Stack.env), intake never rate-limited (the
        limiter still counts), bench/ importable, and ACCRUAL_<NAME> for each setting given."""
        env = {**self.stack.env(), "PYTHONPATH": str(PROJECT)}
        env["ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN"] = env["ACCRUAL_RATE_LIMIT_INTAKE_PER_ADDRESS"] = UNLIMITED
        env.update({f"ACCRUAL_{name.upper()}": str(value) for name, value in settings.items()})
        return env

    @contextlib.contextmanager
    def phase(self) -> Iterator[Bench]:
        """Processes started from here on are stopped (tests/support/processes.py) when the block ends;
        a BenchError leaving it carries the tail of their logs."""
        processes = self.processes = Processes(self.workdir)
        try:
            yield self
        except BenchError as exc:
            raise BenchError(f"{exc}\n{self.logs()}") from None
        finally:
            processes.stop_all()
            self.processes = None

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None, module: str = "") -> int:
        """`accrual ARGS` (or `python -m MODULE ARGS`), its output in WORKDIR/NAME.log; its pid."""
        assert self.processes is not None, "start processes inside bench.phase()"
        return self.processes.start(name, args, env or self.env(), module or "services.cli").pid

    def serve(self, name: str, args: list[str], env: dict[str, str] | None = None, module: str = "") -> int:
        """A server started with `--port PORT` on a free port, once its GET /healthz answers; the port."""
        port = free_port()
        self.start(name, [*args, "--port", str(port)], env, module)
        self.until(lambda: status(port, "/healthz") == 200, 90, f"{name} to answer GET /healthz")
        return port

    def check_running(self, what: str) -> None:
        """BenchError if a process of the phase has exited."""
        if self.processes is None:
            return
        for child, log in zip(self.processes.children, self.processes.logs, strict=True):
            if child.poll() is not None:
                name = Path(log.name).stem
                raise BenchError(f"{name} exited ({child.returncode}) while waiting for {what}")

    def logs(self, lines: int = 15) -> str:
        """The tail of every log of the phase, for a failure's message."""
        processes = self.processes
        names = [Path(log.name).stem for log in processes.logs] if processes else []
        return "\n".join(
            f"--- {name}.log\n" + "\n".join(processes.log(name).splitlines()[-lines:])
            for name in names
            if processes
        )

    def until(self, condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
        """wait_until (tests/support/waiting.py), failing at once if a process of the phase exits."""

        def checked() -> Any:
            self.check_running(what)
            return condition()

        try:
            return wait_until(checked, timeout, interval, what)
        except AssertionError as exc:
            raise BenchError(str(exc)) from None

    def drain(self, left: Callable[[], int], what: str, at_most: int = 0, interval: float = 0.25) -> float:
        """Until left() <= at_most, failing if it stays the same for 120 s or a process exits; progress
        every 15 s. time.time() when it got there."""
        last, moved, shown = left(), time.monotonic(), time.monotonic()
        while last > at_most:
            time.sleep(interval)
            self.check_running(what)
            now = left()
            if now != last:
                last, moved = now, time.monotonic()
            if time.monotonic() - moved > 120:
                raise BenchError(f"{what}: {now} left, none done for 120 s")
            if time.monotonic() - shown > 15:
                print(f"   ... {what}: {now} left; load average {load_average()}", flush=True)
                shown = time.monotonic()
        return time.time()


@contextlib.contextmanager
def bench_on(sqlite: bool, redis: bool = True, **settings: Any) -> Iterator[Bench]:
    """A migrated, seeded stack (tests/support/stack.py) in a temporary directory: a SQLite file and the
    embedded broker, or a new PostgreSQL database and (with `redis`) a redis-server of the benchmark's own,
    without persistence like the shared one, which no test can flush. Everything is gone afterwards."""
    if not sqlite and redis and shutil.which("redis-server") is None:
        raise BenchError(
            "PostgreSQL + Redis needs the redis-server program (Debian: apt-get install redis-server)"
        )
    with contextlib.ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="accrual-bench-")))
        cleanup.callback(drop_templates)
        url, broker = sqlite_url(workdir), ""
        description = f"SQLite file and embedded broker in {workdir}"
        if not sqlite:
            url = cleanup.enter_context(fresh_pg_database(create=False))
            description = f"PostgreSQL database {url.rsplit('/', 1)[1]}"
        if not sqlite and redis:
            server = RedisServer(workdir)
            server.start()
            cleanup.callback(server.stop)
            broker = server.url
            description += f" + Redis {broker} (a redis-server of its own)"
        stack = Stack(make_settings(workdir, url, broker, **settings))
        cleanup.callback(stack.close)
        print(f"\n== {description}", flush=True)
        yield Bench(stack, workdir, description)


def drop_templates() -> None:
    """The tests' template databases and files (tests/support/templates.py) dropped and forgotten, so that
    a later stack in the same process builds them again."""
    TEMPLATES.drop_all()
    TEMPLATES.built.clear()
    TEMPLATES.pg_databases.clear()


def undecided(stack: Stack, prefix: str = "") -> int:
    """Applications (whose screening id starts with `prefix`) still waiting for a decision."""
    query = select(func.count()).select_from(Application).where(Application.decided_at.is_(None))
    with stack.db.reading() as session:
        return session.scalar(query.where(Application.screening_id.startswith(prefix))) or 0


def unpublished(stack: Stack) -> int:
    """Outbox events the relay has not published yet."""
    with stack.db.reading() as session:
        return session.scalar(select(func.count()).select_from(Event).where(Event.status == "pending")) or 0


# --- HTTP and load --------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection to a loopback port, as a site's system would hold one."""

    def __init__(self, port: int, token: str = "", timeout: float = 60) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, the JSON answer or None)."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, data, self.headers)
                response = self.connection.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # gunicorn closes a keep-alive connection idle for 2 s; a request sent on it never reached
                # the application, so sending it again on a new connection is safe.
                self.connection.close()
                if attempt == 2:
                    raise
        is_json = "json" in response.headers.get("Content-Type", "")
        return response.status, json.loads(raw) if raw and is_json else None

    def close(self) -> None:
        self.connection.close()


def status(port: int, path: str) -> int:
    """The status of one GET on a connection of its own; 0 when nothing answers."""
    client = Client(port, timeout=5)
    try:
        return client.call("GET", path)[0]
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        client.close()


@dataclass
class Posts:
    """What a run of POSTs did: each accepted application's id with the time.time() its POST was sent."""

    sent: dict[str, float] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)  # status, or the exception's name -> count
    post_ms: list[float] = field(default_factory=list)
    first: float = math.nan  # the first POST sent
    last: float = math.nan  # the last answer read
    max_lag_ms: float = 0.0  # behind the schedule, at worst

    @property
    def seconds(self) -> float:
        return self.last - self.first

    def summary(self) -> str:
        return (
            f"{len(self.sent)} accepted, refused {dict(self.refused) or 0}, in {self.seconds:.1f} s "
            f"({len(self.sent) / self.seconds:.1f}/s); POST {spread(self.post_ms)}"
        )


def post_applications(
    port: int,
    stack: Stack,
    prefix: str,
    connections: int,
    count: int = 0,
    seconds: float = 0,
    rate: float = 0,
) -> Posts:
    """Eligible applicants (screening ids PREFIX-n) POSTed over `connections` keep-alive connections,
    `count` of them or for `seconds`: back to back, or the n-th due at start + n / rate (open loop: a slow
    answer holds up one connection, not the schedule). A failed POST is counted, never retried."""
    posts, lock, numbers = Posts(), threading.Lock(), itertools.count()
    start = time.perf_counter()
    posts.first = time.time()

    def post(client: Client, n: int) -> None:
        body = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant(f"{prefix}-{n}")}
        sent, began = time.time(), time.perf_counter()
        try:
            answer: tuple[int | str, Any] = client.call("POST", APPLICATIONS, body)
        except (OSError, http.client.HTTPException) as exc:
            answer = type(exc).__name__, None
            client.close()
        with lock:
            if answer[0] == 202:
                posts.sent[answer[1]["id"]] = sent
                posts.post_ms.append((time.perf_counter() - began) * 1000)
            else:
                posts.refused[str(answer[0])] += 1

    def sender() -> None:
        client = Client(port, stack.coordinator)
        for n in numbers:  # shared by the senders
            due = start + n / rate if rate else time.perf_counter()
            if (count and n >= count) or (seconds and due - start >= seconds):
                break
            if (lag := time.perf_counter() - due) < 0:
                time.sleep(-lag)
            elif rate:
                posts.max_lag_ms = max(posts.max_lag_ms, lag * 1000)
            post(client, n)
        client.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    posts.last = time.time()
    return posts


# --- figures --------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


def spread(values: Sequence[float]) -> str:
    """`median M, p95 X, p99 Y, max Z ms (n N)`."""
    return (
        f"median {median(values):.1f}, p95 {percentile(values, 95):.1f}, p99 {percentile(values, 99):.1f}, "
        f"max {max(values, default=math.nan):.1f} ms (n {len(values)})"
    )


def verdict(met: bool) -> str:
    return "PASS" if met else "FAIL"
