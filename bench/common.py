"""Helpers shared by the benchmarks that start Accrual's own processes (latency, webhooks, intake, pipeline).

Not a benchmark: imported by the scripts in bench/ as `bench.common` (each script puts the project
directory on sys.path first). What is here:

- child processes: `spawn` (a command in its own process group, its output in a log file),
  `stop_child` (SIGTERM, then SIGKILL to whatever is left of the group), `wait_for` (a condition,
  failing early with the logs' tails when a child exits), `start_http_server` (a server started on a
  free loopback port and answering GET /readyz) and `accrual_cli` (one `accrual ...` command);
- HTTP: `Client` (one keep-alive connection), `http_call` (one request on a connection of its own);
- throwaway state: `throwaway_database` (a new PostgreSQL database, dropped WITH (FORCE) afterwards),
  `redis_database` (a Redis database index that holds no keys, flushed before and after, and
  `add_redis_db_option`, the option that names one), `private_redis` (a redis-server of the
  benchmark's own), `workspace` (a temporary directory for the logs) and `clean_env` (this
  environment without any ACCRUAL_* variable);
- figures: `percentile` (nearest rank), `stats`, `stats_line`, `median`, `load_average`, `cpu_model`,
  `package_version`, `postgres_settings` and `redis_version`;
- CPU time from /proc (Linux): `pids_in_group`, `backend_pids` (a database's PostgreSQL backends),
  `process_ticks` and `cpu_ms`.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from argparse import ArgumentParser
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TRIAL = "NCT06359912"
PG_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_ADMIN_URL = f"{PG_SERVER_URL}/postgres"
REDIS_BASE_URL = "redis://127.0.0.1:6379"
REDIS_DB_RANGE = range(2, 16)  # 0 and 1 are left to whatever else uses the shared Redis
START_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
CLI_TIMEOUT = 120.0


class BenchError(Exception):
    """A benchmark's back-end could not be set up, or a process it needs did not start or failed."""


# --- child processes ------------------------------------------------------------------------------


@dataclass
class Child:
    """A process started by a benchmark, in its own process group, its output in `log_path`."""

    name: str  # as messages name it: "accrual worker", "reference", ...
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0  # where it listens, if it is a server

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def titled_tail(self, lines: int = 30) -> str:
        """The tail under a line naming the log, for messages that show the logs of several processes."""
        return f"--- {self.log_path.name} (last {lines} lines)\n{self.log_tail(lines)}"

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


def accrual_command(*args: str) -> list[str]:
    """The command line of `accrual ARGS` run with this interpreter."""
    return [sys.executable, "-m", "services.cli", *args]


def spawn(
    name: str, command: list[str], env: dict[str, str], workdir: Path, log_name: str, port: int = 0
) -> Child:
    """`command` in its own process group (a session), cwd `workdir`, its output in workdir/`log_name`."""
    log_path = workdir / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Child(name, process, log_path, port)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_child(child: Child, *, whole_group: bool = False, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM, then SIGKILL to whatever is left of the child's process group after `timeout`; whether
    SIGKILL was needed.

    whole_group=False sends SIGTERM to the child alone, which is what a Celery worker wants: it then
    stops its pool itself. A pool process killed by a signal of its own while it holds the pool's queue
    lock leaves the worker's main process waiting for that lock at exit (billiard's _help_stuff_finish)
    until SIGKILL. whole_group=True suits a supervisor (`accrual serve`) or a gunicorn master.
    """
    pgid = child.process.pid
    killed = False
    if whole_group:
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGTERM)
    elif child.process.poll() is None:
        child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    with suppress(subprocess.TimeoutExpired):
        child.process.wait(timeout)
    # The main process may be gone while a child of its group (a pool process, say) still lingers.
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
        killed = True
    with suppress(subprocess.TimeoutExpired):
        child.process.wait(5)
    return killed


def first_exited(children: Sequence[Child]) -> Child | None:
    return next((c for c in children if c.process.poll() is not None), None)


def check_running(children: Sequence[Child], what: str, tail_lines: int = 30) -> None:
    """BenchError, with the children's log tails, if one of them has exited while waiting for `what`."""
    if (gone := first_exited(children)) is not None:
        raise BenchError(
            f"{gone.name} exited with {gone.process.returncode} while waiting for {what}:\n"
            + "\n".join(c.titled_tail(tail_lines) for c in children)
        )


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    children: Sequence[Child],
    step: float = 0.1,
    tail_lines: int = 30,
) -> Any:
    """Poll `condition` every `step` seconds until it is true (and return it); BenchError with the
    children's log tails if one of them exits first or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        check_running(children, what, tail_lines)
        time.sleep(step)
    raise BenchError(
        f"timed out after {timeout:.0f} s waiting for {what}:\n"
        + "\n".join(c.titled_tail(tail_lines) for c in children)
    )


def start_http_server(
    name: str,
    command: list[str],
    env: dict[str, str],
    workdir: Path,
    log_name: str,
    timeout: float = START_TIMEOUT,
    step: float = 0.1,
    tail_lines: int = 30,
) -> Child:
    """`command --host HOST --port PORT` on a free port, once GET /readyz answers 200 (else stopped,
    its whole process group, and BenchError)."""
    port = free_port()
    server = spawn(name, [*command, "--host", HOST, "--port", str(port)], env, workdir, log_name, port)
    try:
        wait_for(lambda: ready(port), timeout, "GET /readyz to answer 200", [server], step, tail_lines)
    except BaseException:
        stop_child(server, whole_group=True)
        raise
    return server


def accrual_cli(env: dict[str, str], workdir: Path, *args: str) -> str:
    """One `accrual` command; its standard output, or BenchError with what it said."""
    done = subprocess.run(
        accrual_command(*args),
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"accrual {' '.join(args)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --- HTTP -----------------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects once if the server closed it while idle."""

    def __init__(self, host: str, port: int, token: str | None = None, timeout: float = 10) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=timeout)
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, http.client.HTTPMessage]:
        """(status, the body parsed as JSON or else as text, the headers)."""
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
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return response.status, parsed, response.headers

    def close(self) -> None:
        self.connection.close()


def http_call(port: int, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
    """One request on a connection of its own: (status, body parsed as JSON or else as text)."""
    client = Client(HOST, port, token or None)
    try:
        status, parsed, _ = client.call(method, path, body)
        return status, parsed
    finally:
        client.close()


def ready(port: int) -> bool:
    """Whether GET /readyz on the loopback port answers 200."""
    try:
        return http_call(port, "GET", "/readyz")[0] == 200
    except (OSError, http.client.HTTPException):
        return False


# --- throwaway state ------------------------------------------------------------------------------


@contextmanager
def workspace(name: str, keep: bool, kept: str = "the processes' logs") -> Iterator[Path]:
    """A temporary directory `accrual-bench-<name>-*` for the processes' logs (and SQLite files),
    removed afterwards unless `keep`; then its path is printed, with `kept`, what it holds."""
    prefix = f"accrual-bench-{name}-"
    if keep:
        path = Path(tempfile.mkdtemp(prefix=prefix))
        yield path
        print(f"   kept {path} ({kept})", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def add_redis_db_option(parser: ArgumentParser) -> None:
    """--redis-db: the Redis database index of the broker, for `redis_database`."""
    parser.add_argument(
        "--redis-db",
        type=int,
        choices=list(REDIS_DB_RANGE),
        help=f"Redis database index for PostgreSQL + Redis (default: the first empty one in "
        f"{REDIS_DB_RANGE.start}..{REDIS_DB_RANGE.stop - 1})",
    )


def clean_env() -> dict[str, str]:
    """This process's environment without any ACCRUAL_* variable: a child's settings are only those the
    benchmark gives it."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ACCRUAL_")}


@contextmanager
def throwaway_database(label: str) -> Iterator[str]:
    """A new database `accrual_bench_<label>_<pid>_<random>` on the PostgreSQL server, dropped WITH
    (FORCE) afterwards, whatever happens; yields its URL."""
    from sqlalchemy import create_engine, text

    name = f"accrual_bench_{label}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise BenchError(f"cannot create a database on {PG_ADMIN_URL}: {type(exc).__name__}: {exc}") from exc
    try:
        yield f"{PG_SERVER_URL}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def redis_database(requested: int | None) -> Iterator[str]:
    """The URL of a Redis database index in 2..15 (the first empty one unless `requested`), flushed
    before and after."""
    import redis

    try:
        index = requested
        if index is None:
            for candidate in REDIS_DB_RANGE:
                probe = redis.Redis.from_url(f"{REDIS_BASE_URL}/{candidate}", socket_connect_timeout=3)
                try:
                    if probe.dbsize() == 0:
                        index = candidate
                        break
                finally:
                    probe.close()
        if index is None:
            raise BenchError(
                f"every Redis database {REDIS_DB_RANGE.start}..{REDIS_DB_RANGE.stop - 1} holds keys"
            )
        url = f"{REDIS_BASE_URL}/{index}"
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"cannot use Redis at {REDIS_BASE_URL}: {type(exc).__name__}: {exc}") from exc
    try:
        yield url
    finally:
        with suppress(redis.RedisError):
            client.flushdb()
        client.close()


@contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """A redis-server of the benchmark's own on a free loopback port, without persistence (as the shared
    one runs), stopped afterwards; yields its URL (database 0). No test or other benchmark can flush it
    or take its tasks, as they can a database of the shared server."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError(
            "a private Redis needs the redis-server program (Debian: apt-get install redis-server)"
        )
    port = free_port()
    command = [binary, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
    server = spawn("redis-server", [*command, "--dir", str(workdir)], clean_env(), workdir, "redis.log", port)
    client = redis.Redis(host=HOST, port=port, socket_connect_timeout=1)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        wait_for(answers, 30, "redis-server to answer PING", [server])
        yield f"redis://{HOST}:{port}/0"
    finally:
        client.close()
        stop_child(server, whole_group=True)


def postgres_settings(*names: str) -> dict[str, str]:
    """`SHOW name` for each name on the PostgreSQL server (raises what SQLAlchemy raises)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            return {name: str(connection.execute(text(f"SHOW {name}")).scalar_one()) for name in names}
    finally:
        engine.dispose()


def redis_version(url: str = REDIS_BASE_URL) -> str:
    """The Redis server's version, or '?' if it does not answer."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()
    except redis.RedisError:
        return "?"


def backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends connected to the database at `url` (but the one asking)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            query = text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [int(pid) for pid in connection.execute(query).scalars()]
    finally:
        engine.dispose()


# --- CPU time (Linux /proc; NaN elsewhere) --------------------------------------------------------


def pids_in_group(pgid: int) -> list[int]:
    """The processes of the process group `pgid` (a child started by `spawn` and its children)."""
    pids = []
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else []:
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:  # state, ppid, pgrp, ...
                    pids.append(int(entry.name))
    return pids


def process_ticks(pids: list[int], reaped: bool = False) -> dict[int, int]:
    """utime + stime of each process, in clock ticks; processes that are gone are left out. With
    `reaped`, each also counts its children that have exited and that it has waited for (cutime +
    cstime): a Celery worker's pool processes replaced after worker_max_tasks_per_child, say."""
    ticks = {}
    for pid in pids:
        with suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
            if reaped:
                ticks[pid] += int(fields[13]) + int(fields[14])  # cutime, cstime (fields 16 and 17)
    return ticks


def cpu_ms(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU milliseconds used between two snapshots; a process born in between counts from zero."""
    if not after:
        return math.nan
    ticks = sum(value - before.get(pid, 0) for pid, value in after.items())
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


# --- figures --------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def stats(values: Sequence[float]) -> dict[str, float]:
    """median, p95, p99 and max (NaN for no values)."""
    if not values:
        return {k: math.nan for k in ("median", "p95", "p99", "max")}
    return {
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
    }


def stats_line(label: str, values: Sequence[float], width: int = 40) -> str:
    """`   label  n=...  median=...  p95=...  p99=...  max=...  ms`, the label padded to `width`."""
    s = stats(values)
    return (
        f"   {label:<{width}} n={len(values):<4} median={s['median']:8.1f}  p95={s['p95']:8.1f}  "
        f"p99={s['p99']:8.1f}  max={s['max']:8.1f}  ms"
    )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, `a, b, c`."""
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "?"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what the platform module says."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"
