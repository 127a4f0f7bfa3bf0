"""Memory: peak RSS of Accrual's API workers and Celery worker under intake load, and whether they grow.

Usage (from the project directory, with the project's virtual environment; `wrk` on PATH is used when
there, `apt-get install -y wrk` on Debian, else a paced Python load generator in a second process):

    python bench/memory.py [--minutes 10] [--rate 5] [--burst-seconds 30] [--interval 2]
    python bench/memory.py --minutes 1 --warmup-minutes 0.25 --burst-seconds 5

On a fresh PostgreSQL database (created on postgresql+psycopg://postgres@127.0.0.1:5432, prepared with
`accrual db upgrade`, `accrual seed` and `accrual token create --role coordinator --site SITE`, dropped
WITH (FORCE) afterwards) and a Redis database (redis://127.0.0.1:6379/<db>, <db> in 2..15, the first
empty one unless --redis-db says which, flushed before and after), it starts the whole pipeline:

- loaded: `accrual api` (gunicorn, gthread, ACCRUAL_API_WORKERS x ACCRUAL_API_THREADS, the setup of
  bench/intake.py), `accrual worker` (Celery, prefork, ACCRUAL_WORKER_CONCURRENCY pool processes) and
  `accrual beat` (the outbox relay that publishes each application's events to the worker);
- reference, idle, the same commands on the same database and broker: a second `accrual api` that
  serves only `GET /healthz`, once a second, and a second `accrual worker` consuming a queue nobody
  publishes to.

Settings: ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN and ..._PER_ADDRESS = 1000000/minute, ACCRUAL_LOG_LEVEL =
WARNING. Once a first application has been decided (the pipeline works), the run has three phases:

1. burst, the intake benchmark's highest level: --burst-connections connections sending back to back
   (closed loop) for --burst-seconds; then a wait until every application is decided and every event
   published (a backlog holds memory legitimately, so the soak starts on an idle pipeline);
2. soak: --minutes of intake at a steady --rate per second (default 5, which a loaded 2-core machine
   keeps up with): wrk with bench/intake.lua, each of rate x 0.5 connections pausing a random,
   exponentially distributed time before each request, run in segments (20 s, then a minute each)
   whose mean pause is set from the rate and the latency the last segment showed; or the Python
   generator (`--load python`, or when wrk is missing) sending on a fixed schedule. The undecided
   applications and the pending events are counted at every sample to show that the pipeline keeps up;
3. a wait until the last applications are decided.

Every --interval seconds, from start-up to the end, the RSS (psutil) of each process is sampled: the
gunicorn masters and their workers, the Celery main processes and their pool children, the relay.
Printed per process: RSS at start-up (when ready, before the first request), peak over the run, peak
during the burst, RSS after the soak's first --warmup-minutes, at the end of the soak, and the slope of
RSS against time by least squares over the soak after its warm-up, in MiB per minute and per hour, with
the slope of the second half alone; the idle reference's figures beside them and the difference of the
slopes. Celery replaces a pool process after 1,000 tasks (worker_max_tasks_per_child), so a pool
process lives only minutes under load: for them, the RSS each one reached before it was replaced is
fitted against time instead (does each new one end higher than the last?), and how much each grew over
its life is printed beside it.

Criterion, printed with the verdict: a process kind grows when the fitted line rises, over the soak
after its warm-up, by more than max(1 MiB, 1 % of its RSS after warm-up) more than its idle reference's
line does. Exit status: 0 when nothing grows and the pipeline kept up, 1 when a process grows or the
pipeline fell behind, 2 when the set-up fails. Processes are stopped (bench/common.py's stop_child:
SIGTERM, to the whole group for gunicorn, SIGKILL after 30 s), the database dropped and the Redis
database flushed whatever happens, Ctrl-C and SIGTERM included; the processes' output is in a temporary
directory whose logs' tails are printed when one fails.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # run as a script from anywhere

from bench.common import (  # noqa: E402
    HOST,
    REDIS_DB_RANGE,
    START_TIMEOUT,
    TRIAL,
    BenchError,
    Child,
    accrual_cli,
    accrual_command,
    clean_env,
    http_call,
    load_average,
    package_version,
    redis_database,
    spawn,
    start_http_server,
    stop_child,
    throwaway_database,
    wait_for,
)
from config import Settings  # noqa: E402
from tests.support.applicants import eligible_applicant  # noqa: E402

DEFAULT_SITE = "site_5812946e17295a21a499"
UNLIMITED = "1000000/minute"
PLACEHOLDER = "__SCREENING_ID__"
IDLE_QUEUE = "memory-bench-idle"
WORKER_QUEUES = ("screening", "default", "notifications")  # what `accrual worker` consumes by default
LUA_SCRIPT = Path(__file__).resolve().with_name("intake.lua")
FIRST_DECISION_TIMEOUT = 90.0
DRAIN_TIMEOUT = 900.0
MEAN_PAUSE_S = 0.5  # each soak connection's mean pause (about); connections = rate x this
MIB = 1024 * 1024
GROWTH_FLOOR_MIB = 1.0
GROWTH_FRACTION = 0.01


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived; the run stops and cleans up."""


# --- processes ------------------------------------------------------------------------------------


@contextmanager
def started(child: Child, whole_group: bool) -> Iterator[Child]:
    """The child, stopped afterwards: SIGTERM to it alone (a Celery worker then stops its pool itself)
    or to its whole group (a gunicorn master and its workers), SIGKILL to what is left after 30 s."""
    try:
        yield child
    finally:
        stop_child(child, whole_group=whole_group)


def wait_children(child: Child, count: int) -> None:
    """Until the process has `count` children (gunicorn's workers, Celery's pool)."""
    import psutil

    def enough() -> bool:
        with suppress(psutil.Error):
            return len(psutil.Process(child.process.pid).children()) >= count
        return False

    wait_for(enough, START_TIMEOUT, f"{count} child processes of {child.name}", [child], step=0.2)


# --- database and Redis ---------------------------------------------------------------------------


class Pipeline:
    """Counts in the service's database (applications, the undecided ones, pending outbox events) and
    in the broker (messages waiting in the worker's queues)."""

    def __init__(self, url: str, redis_url: str) -> None:
        import redis
        from sqlalchemy import create_engine

        self.engine = create_engine(url, pool_size=1, max_overflow=0, connect_args={"connect_timeout": 5})
        self.redis = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=5)

    def queued(self) -> int:
        """Messages waiting in the loaded worker's queues (Redis lists named after them)."""
        return sum(int(self.redis.llen(queue)) for queue in WORKER_QUEUES)

    def counts(self) -> tuple[int, int, int]:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            total, undecided = connection.execute(
                text("SELECT count(*), count(*) FILTER (WHERE status = 'submitted') FROM applications")
            ).one()
            pending = connection.execute(
                text("SELECT count(*) FROM events WHERE status = 'pending'")
            ).scalar_one()
        return int(total), int(undecided), int(pending)

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()


# --- load -----------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    seconds: float
    requests: int
    ok_2xx: int
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    segments: int = 1  # more: p50 is the median of the segments' p50, p99 the worst segment's

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Load:
    url: str
    body_file: Path
    token: str
    tag: str
    use_wrk: bool
    workdir: Path

    def start(self, name: str, connections: int, seconds: int, think_ms: float = 0, rate: float = 0) -> Child:
        """A load generator for `seconds`: wrk, back to back or with a mean pause of `think_ms` before
        each request; or the Python one, back to back or on a fixed schedule of `rate` per second."""
        prefix = f"M{self.tag}{name}"
        env = {k: v for k, v in os.environ.items() if k != "INTAKE_THINK_MS"}
        if self.use_wrk:
            if think_ms > 0:
                env["INTAKE_THINK_MS"] = f"{think_ms:.1f}"
            command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s"]
            command += ["-s", str(LUA_SCRIPT), self.url, "--", str(self.body_file), self.token, prefix]
        else:
            command = [sys.executable, str(Path(__file__).resolve()), "--load-generator", self.url]
            command += [str(self.body_file), self.token, prefix, str(connections), str(seconds), str(rate)]
        return spawn(f"load generator ({name})", command, env, self.workdir, f"load-{name}.log")

    def result(self, proc: Child, timeout: float) -> LoadResult:
        try:
            proc.process.wait(timeout)
        except subprocess.TimeoutExpired:
            stop_child(proc)
            raise BenchError(f"the load generator did not finish:\n{proc.log_tail()}") from None
        text = proc.log_path.read_text(errors="replace")
        found = [line for line in text.splitlines() if line.startswith("WRK_RESULT ")]
        if proc.process.returncode != 0 or not found:
            raise BenchError(f"the load generator exited with {proc.process.returncode}:\n{proc.log_tail()}")
        data = json.loads(found[-1].removeprefix("WRK_RESULT "))
        return LoadResult(
            seconds=data["duration_us"] / 1e6,
            requests=data["requests"],
            ok_2xx=data["ok_2xx"],
            non_2xx=data["non_2xx"],
            socket_errors=sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")),
            p50_ms=data["p50_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
        )


def load_generator(argv: list[str]) -> int:
    """`--load-generator URL BODY_FILE TOKEN PREFIX CONNECTIONS SECONDS RATE`: what wrk does here, in
    Python, for when wrk is missing: CONNECTIONS threads, each on its own keep-alive connection, either
    back to back (RATE 0) or together on a fixed schedule of RATE requests per second (open loop); one
    `WRK_RESULT {json}` line at the end, as bench/intake.lua prints."""
    from urllib.parse import urlsplit

    url, body_file, token, prefix = argv[:4]
    connections, seconds, rate = int(argv[4]), float(argv[5]), float(argv[6])
    parts = urlsplit(url)
    template = Path(body_file).read_text()
    lock = threading.Lock()
    latencies: list[float] = []
    tally = {"ok": 0, "bad": 0, "errors": 0}
    started = time.monotonic()
    deadline = started + seconds
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port or 80, timeout=10)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        count = 0
        while not stopping.is_set():
            if rate > 0:  # this thread's share of the schedule: request k of all at started + k / rate
                due = started + (count * connections + number) / rate
                if due >= deadline:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
            elif time.monotonic() >= deadline:
                break
            count += 1
            body = template.replace(PLACEHOLDER, f"{prefix}-{number}-{count}-{secrets.token_hex(2)}", 1)
            sent = time.monotonic()
            try:
                connection.request("POST", parts.path, body=body.encode(), headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                with lock:
                    tally["errors"] += 1
                continue
            with lock:
                latencies.append(time.monotonic() - sent)
                tally["ok" if 200 <= status < 300 else "bad"] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(latencies) or [0.0]

    def at(p: float) -> int:
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1e6)

    result = {
        "duration_us": round((time.monotonic() - started) * 1e6),
        "requests": tally["ok"] + tally["bad"],
        "ok_2xx": tally["ok"],
        "non_2xx": tally["bad"],
        "connect_errors": 0,
        "read_errors": tally["errors"],
        "write_errors": 0,
        "timeouts": 0,
        "p50_us": at(50),
        "p99_us": at(99),
    }
    print("WRK_RESULT " + json.dumps(result), flush=True)
    return 0


# --- sampling -------------------------------------------------------------------------------------


@dataclass
class Point:
    t: float  # seconds since the processes were ready
    pid: int
    rss: float  # MiB


@dataclass
class PipelinePoint:
    t: float
    applications: int
    undecided: int
    pending_events: int
    queued: int  # messages waiting in the broker for the loaded worker


@dataclass
class Sampler:
    """A thread sampling every process's RSS each `interval` s and calling the idle API each second."""

    roles: dict[str, tuple[Child, bool]]  # role -> (process, whether its children are the role's own)
    pipeline: Pipeline
    interval: float
    idle_api_port: int
    started: float = field(default_factory=time.monotonic)
    points: dict[str, list[Point]] = field(default_factory=dict)
    flow: list[PipelinePoint] = field(default_factory=list)
    healthz_ok: int = 0
    healthz_failed: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    error: str | None = None

    def now(self) -> float:
        return time.monotonic() - self.started

    def sample(self) -> None:
        import psutil

        t = self.now()
        for role, (proc, of_children) in self.roles.items():
            with suppress(psutil.Error):
                main = psutil.Process(proc.process.pid)
                targets = main.children() if of_children else [main]
                for target in targets:
                    with suppress(psutil.Error):
                        rss = target.memory_info().rss / MIB
                        self.points.setdefault(role, []).append(Point(t, target.pid, rss))
        with suppress(Exception):
            total, undecided, pending = self.pipeline.counts()
            self.flow.append(PipelinePoint(t, total, undecided, pending, self.pipeline.queued()))

    def run(self) -> None:
        next_sample = time.monotonic()
        try:
            while not self.stopping.is_set():
                if time.monotonic() >= next_sample:
                    self.sample()
                    next_sample += self.interval
                try:
                    status = http_call(self.idle_api_port, "GET", "/healthz")[0]
                    if status == 200:
                        self.healthz_ok += 1
                    else:
                        self.healthz_failed += 1
                except (OSError, http.client.HTTPException):
                    self.healthz_failed += 1
                self.stopping.wait(max(0.0, min(1.0, next_sample - time.monotonic())))
        except Exception as exc:  # reported at the end; the run goes on without samples
            self.error = f"{type(exc).__name__}: {exc}"

    def start(self) -> None:
        self.sample()
        self.thread = threading.Thread(target=self.run, name="sampler", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(30)
        self.sample()


# --- analysis -------------------------------------------------------------------------------------


def fit(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y on t (y per t unit); NaN with fewer than 3 points."""
    if len(points) < 3:
        return math.nan
    mean_t = statistics.fmean(t for t, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    sxx = sum((t - mean_t) ** 2 for t, _ in points)
    if sxx == 0:
        return math.nan
    return sum((t - mean_t) * (y - mean_y) for t, y in points) / sxx


def near(points: list[Point], t: float) -> float:
    """The RSS of the sample nearest to time t (mean over the processes sampled then)."""
    if not points:
        return math.nan
    best = min(abs(p.t - t) for p in points)
    return statistics.fmean(p.rss for p in points if abs(abs(p.t - t) - best) < 1e-9)


@dataclass
class Figures:
    """What one process (or one kind of short-lived process) did, in MiB and MiB per minute."""

    label: str
    start: float
    peak: float
    burst_peak: float
    after_warmup: float
    end: float
    slope: float  # MiB per minute over the soak after its warm-up
    second_half: float  # the same over the second half of that window
    window_min: float
    note: str = ""

    @property
    def growth(self) -> float:
        """MiB the fitted line rises over the window."""
        return self.slope * self.window_min


@dataclass
class Phases:
    burst: tuple[float, float]
    soak: tuple[float, float]
    warmup_s: float

    @property
    def window(self) -> tuple[float, float]:
        return self.soak[0] + self.warmup_s, self.soak[1]


def long_lived(label: str, series: list[Point], phases: Phases) -> Figures:
    lo, hi = phases.window
    mid = (lo + hi) / 2
    inside = [(p.t / 60, p.rss) for p in series if lo <= p.t <= hi]
    second = [(t, y) for t, y in inside if t * 60 >= mid]
    burst = [p.rss for p in series if phases.burst[0] <= p.t <= phases.burst[1]]
    return Figures(
        label=label,
        start=series[0].rss if series else math.nan,
        peak=max((p.rss for p in series), default=math.nan),
        burst_peak=max(burst, default=math.nan),
        after_warmup=near(series, lo),
        end=near(series, hi),
        slope=fit(inside),
        second_half=fit(second),
        window_min=(hi - lo) / 60,
    )


def by_pid(points: list[Point]) -> dict[int, list[Point]]:
    series: dict[int, list[Point]] = {}
    for point in points:
        series.setdefault(point.pid, []).append(point)
    return series


def pool(label: str, points: list[Point], phases: Phases, interval: float) -> Figures:
    """Pool processes, replaced after 1,000 tasks: the RSS each reached before it went, fitted against
    the time it went (for those gone during the window), or, when none was replaced, the RSS of all of
    them over the window as for long-lived processes (the mean of the processes at each sample)."""
    lo, hi = phases.window
    lives = by_pid(points)
    last_t = max((p.t for p in points), default=0.0)
    ended = {
        pid: s
        for pid, s in lives.items()
        if lo <= s[-1].t <= hi and s[-1].t < last_t - interval / 2 and len(s) > 1
    }
    times = sorted({p.t for p in points})
    mean_series = [Point(t, 0, statistics.fmean(p.rss for p in points if p.t == t)) for t in times]
    figures = long_lived(label, mean_series, phases)
    figures.peak = max((p.rss for p in points), default=math.nan)
    burst = [p.rss for p in points if phases.burst[0] <= p.t <= phases.burst[1]]
    figures.burst_peak = max(burst, default=math.nan)
    if len(ended) >= 3:
        ends = sorted((s[-1].t / 60, max(p.rss for p in s)) for s in ended.values())
        mid = (lo + hi) / 2 / 60
        figures.slope = fit(ends)
        figures.second_half = fit([(t, y) for t, y in ends if t >= mid])
        grew = [max(p.rss for p in s) - s[0].rss for s in ended.values()]
        lifetime = statistics.fmean(s[-1].t - s[0].t for s in ended.values())
        figures.note = (
            f"{len(lives)} pool processes seen, {len(ended)} replaced during the window (mean life "
            f"{lifetime:.0f} s); slope = of each one's peak RSS against the time it was replaced; each "
            f"grew {statistics.fmean(grew):+.1f} MiB on average from its first sample to its peak (max "
            f"{max(grew):+.1f})"
        )
    else:
        figures.note = (
            f"{len(lives)} pool processes seen, {len(ended)} replaced during the window; slope = of their "
            f"mean RSS over time"
        )
    return figures


def verdict(loaded: Figures, idle: Figures) -> tuple[bool, str]:
    """(grows, why): the loaded line rises over the window by more than the idle one's plus the allowance."""
    allowance = max(GROWTH_FLOOR_MIB, GROWTH_FRACTION * loaded.after_warmup)
    excess = loaded.growth - (idle.growth if not math.isnan(idle.growth) else 0.0)
    if math.isnan(excess):
        return False, "no verdict: too few samples in the window"
    grows = excess > allowance
    return grows, (
        f"fitted rise over {loaded.window_min:.1f} min {loaded.growth:+.2f} MiB, idle reference's "
        f"{idle.growth:+.2f} MiB, difference {excess:+.2f} MiB vs allowance {allowance:.2f} MiB: "
        f"{'GROWS' if grows else 'no growth'}"
    )


# --- reporting ------------------------------------------------------------------------------------


def header(args: argparse.Namespace, use_wrk: bool) -> None:
    cpu = platform.processor() or platform.machine()
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print(
        "Accrual memory: RSS of the API's gunicorn workers and of a Celery worker under intake, over a soak"
    )
    print(f"machine:  {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; load average "
          f"now {load_average()}")  # fmt: skip
    print(
        f"versions: Python {platform.python_version()}, accrual {package_version('accrual')}, gunicorn "
        f"{package_version('gunicorn')}, Celery {package_version('celery')}, SQLAlchemy "
        f"{package_version('sqlalchemy')}, psutil {package_version('psutil')}"
    )
    generator = "wrk + bench/intake.lua (paced by random pauses)" if use_wrk else "Python, fixed schedule"
    print(
        f"settings: gunicorn gthread {args.workers} x {args.threads}; Celery prefork, {args.concurrency} "
        f"pool processes; ACCRUAL_RATE_LIMIT_INTAKE_*={UNLIMITED}, ACCRUAL_LOG_LEVEL=WARNING"
    )
    print(
        f"run:      burst {args.burst_seconds} s at {args.burst_connections} connections back to back, "
        f"drain, then soak {args.minutes:g} min at {args.rate:g}/s ({generator}); RSS every "
        f"{args.interval:g} s; slopes over the soak after its first {args.warmup_minutes:g} min",
        flush=True,
    )


def row(f: Figures) -> str:
    def mib(value: float) -> str:
        return f"{value:8.1f}" if not math.isnan(value) else f"{'-':>8}"

    def per_min(value: float) -> str:
        return f"{value:+9.3f}" if not math.isnan(value) else f"{'-':>9}"

    per_hour = f"{f.slope * 60:+8.1f}" if not math.isnan(f.slope) else f"{'-':>8}"
    return (
        f"   {f.label:<34} {mib(f.start)} {mib(f.peak)} {mib(f.burst_peak)} {mib(f.after_warmup)} "
        f"{mib(f.end)} {per_min(f.slope)} {per_hour} {per_min(f.second_half)}"
    )


def table(rows: list[Figures]) -> None:
    print(
        f"   {'process':<34} {'start-up':>8} {'peak':>8} {'burst pk':>8} {'warm':>8} {'end':>8} "
        f"{'MiB/min':>9} {'MiB/h':>8} {'2nd half':>9}"
    )
    for figures in rows:
        print(row(figures))
        if figures.note:
            print(f"   {'':<34} ({figures.note})")


# --- the run --------------------------------------------------------------------------------------


def service_env(args: argparse.Namespace, workdir: Path, database_url: str, redis_url: str) -> dict[str, str]:
    """The settings every Accrual process of the run shares (one data directory: the same data keys)."""
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH", "")]))
    env["ACCRUAL_DATA_DIR"] = str(workdir / "accrual-data")
    env["ACCRUAL_DATABASE_URL"] = database_url
    env["ACCRUAL_BROKER_URL"] = redis_url
    env["ACCRUAL_LOG_LEVEL"] = "WARNING"
    env["ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN"] = UNLIMITED
    env["ACCRUAL_RATE_LIMIT_INTAKE_PER_ADDRESS"] = UNLIMITED
    env["ACCRUAL_API_WORKERS"] = str(args.workers)
    env["ACCRUAL_API_THREADS"] = str(args.threads)
    env["ACCRUAL_WORKER_CONCURRENCY"] = str(args.concurrency)
    return env


def first_decision(port: int, token: str, site: str, tag: str) -> None:
    """One application submitted and decided: the API, relay, broker and worker all work."""
    body = {"trial_id": TRIAL, "site_id": site, "applicant": eligible_applicant(f"FIRST-{tag}")}
    status, answer = http_call(port, "POST", "/api/v1/applications", body, token)
    if status != 202:
        raise BenchError(f"a first POST /api/v1/applications answered {status}: {answer}")
    deadline = time.monotonic() + FIRST_DECISION_TIMEOUT
    while time.monotonic() < deadline:
        status, view = http_call(port, "GET", f"/api/v1/applications/{answer['id']}", token=token)
        if status == 200 and view["status"] != "submitted":
            return
        time.sleep(0.2)
    raise BenchError(f"the first application was not decided within {FIRST_DECISION_TIMEOUT:.0f} s")


def drain(pipeline: Pipeline, what: str) -> float:
    """Wait until no application is undecided and no event pending; the seconds it took."""
    started = time.monotonic()
    last_print = started
    while True:
        _, undecided, pending = pipeline.counts()
        if undecided == 0 and pending == 0:
            return time.monotonic() - started
        if time.monotonic() - started > DRAIN_TIMEOUT:
            raise BenchError(
                f"{what}: {undecided} undecided, {pending} events pending after {DRAIN_TIMEOUT:.0f} s"
            )
        if time.monotonic() - last_print > 15:
            waiting = pipeline.queued()
            print(
                f"   ... {undecided} undecided, {pending} events pending, {waiting} broker messages waiting",
                flush=True,
            )
            last_print = time.monotonic()
        time.sleep(0.5)


def show_load(name: str, result: LoadResult) -> None:
    of = f" (median / worst of {result.segments} segments)" if result.segments > 1 else ""
    print(
        f"   {name}: {result.requests} requests in {result.seconds:.1f} s ({result.rate:.1f}/s), "
        f"{result.ok_2xx} 2xx, {result.non_2xx} non-2xx, {result.socket_errors} socket errors; "
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms{of}",
        flush=True,
    )


def paced(load: Load, seconds: int, rate: float, loads: list[Child]) -> LoadResult:
    """`seconds` of load at `rate` per second. The Python generator keeps a fixed schedule. wrk's
    connections each pause a random time before each request, which makes a closed system: throughput
    = connections / (pause + latency); so wrk runs in segments (20 s, then a minute each) and each
    segment's mean pause is set from the rate and the latency the last one showed."""
    connections = max(1, round(rate * MEAN_PAUSE_S))
    if not load.use_wrk:
        print(f"   Python generator, {connections} connections, fixed schedule", flush=True)
        proc = load.start("soak", connections, seconds, rate=rate)
        loads.append(proc)
        return load.result(proc, seconds + 120)
    think_ms = connections / rate * 1000
    segments: list[LoadResult] = []
    done = 0
    while done < seconds:
        length = min(seconds - done, 20 if not segments else 60)
        proc = load.start(f"soak{len(segments)}", connections, length, think_ms=think_ms)
        loads.append(proc)
        result = load.result(proc, length + 120)
        segments.append(result)
        done += length
        show_load(
            f"soak {done - length:>4}-{done:<4} s, {connections} connections, mean pause {think_ms:4.0f} ms",
            result,
        )
        if result.rate > 0:
            latency_ms = max(0.0, connections / result.rate * 1000 - think_ms)
            think_ms = max(1.0, connections / rate * 1000 - latency_ms)
    return LoadResult(
        seconds=sum(r.seconds for r in segments),
        requests=sum(r.requests for r in segments),
        ok_2xx=sum(r.ok_2xx for r in segments),
        non_2xx=sum(r.non_2xx for r in segments),
        socket_errors=sum(r.socket_errors for r in segments),
        p50_ms=statistics.median(r.p50_ms for r in segments),
        p99_ms=max(r.p99_ms for r in segments),
        segments=len(segments),
    )


def run(args: argparse.Namespace, use_wrk: bool) -> int:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accrual-bench-memory-")))
        services: list[Child] = []
        loads: list[Child] = []  # load generators, stopped if still running when the run ends

        def stop_loads() -> None:
            for child in loads:
                if child.process.poll() is None:
                    stop_child(child)

        stack.callback(stop_loads)
        try:
            redis_url = stack.enter_context(redis_database(args.redis_db))
            database_url = stack.enter_context(throwaway_database("memory"))
            print(f"\n== set-up: database {database_url.rsplit('/', 1)[1]}, broker {redis_url}", flush=True)
            env = service_env(args, workdir, database_url, redis_url)
            accrual_cli(env, workdir, "db", "upgrade")
            accrual_cli(env, workdir, "seed")
            output = accrual_cli(
                env, workdir, "token", "create", "--role", "coordinator", "--site", args.site
            )
            token = output.strip().splitlines()[-1].strip()

            def server(name: str, log_name: str) -> Child:
                child = start_http_server(name, accrual_command("api"), env, workdir, log_name, step=0.2)
                services.append(child)
                return stack.enter_context(started(child, whole_group=True))

            def process(name: str, log_name: str, *command: str) -> Child:
                child = spawn(name, accrual_command(*command), env, workdir, log_name)
                services.append(child)
                return stack.enter_context(started(child, whole_group=False))

            api = server("accrual api", "api.log")
            idle_api = server("idle accrual api (reference)", "idle-api.log")
            worker = process("accrual worker", "worker.log", "worker")
            idle_worker = process(
                "idle accrual worker (reference)", "idle-worker.log", "worker", "--queues", IDLE_QUEUE
            )
            relay = process("accrual beat (relay)", "beat.log", "beat")
            api_port, idle_port = api.port, idle_api.port
            wait_children(api, args.workers)
            wait_children(idle_api, args.workers)
            wait_children(worker, args.concurrency)
            wait_children(idle_worker, args.concurrency)
            pipeline = Pipeline(database_url, redis_url)
            stack.callback(pipeline.close)
            sampler = Sampler(
                roles={
                    "api": (api, True),
                    "idle-api": (idle_api, True),
                    "api-master": (api, False),
                    "worker": (worker, False),
                    "idle-worker": (idle_worker, False),
                    "pool": (worker, True),
                    "idle-pool": (idle_worker, True),
                    "relay": (relay, False),
                },
                pipeline=pipeline,
                interval=args.interval,
                idle_api_port=idle_port,
            )
            sampler.start()
            stack.callback(sampler.close)
            print(f"   all processes ready; API on http://{HOST}:{api_port}, idle API on port {idle_port}")
            first_decision(api_port, token, args.site, args.tag)
            print("   a first application was decided: API, relay, broker and worker work", flush=True)

            body = {"trial_id": TRIAL, "site_id": args.site, "applicant": eligible_applicant(PLACEHOLDER)}
            body_file = workdir / "body.json"
            body_file.write_text(json.dumps(body, separators=(",", ":")))
            load = Load(
                f"http://{HOST}:{api_port}/api/v1/applications", body_file, token, args.tag, use_wrk, workdir
            )

            burst_start = sampler.now()
            burst: LoadResult | None = None
            if args.burst_seconds > 0:
                print(
                    f"\n== burst: {args.burst_connections} connections for {args.burst_seconds} s", flush=True
                )
                proc = load.start("burst", args.burst_connections, args.burst_seconds)
                loads.append(proc)
                burst = load.result(proc, args.burst_seconds + 60)
                show_load("burst", burst)
            burst_end = sampler.now()
            took = drain(pipeline, "after the burst")
            print(f"   pipeline drained {took:.0f} s after the burst", flush=True)

            print(f"\n== soak: {args.minutes:g} min at {args.rate:g}/s", flush=True)
            soak_start = sampler.now()
            soak = paced(load, round(args.minutes * 60), args.rate, loads)
            soak_end = sampler.now()
            show_load("soak, all", soak)
            took = drain(pipeline, "after the soak")
            print(f"   last application decided {took:.1f} s after the soak", flush=True)
            sampler.close()
        except BenchError as exc:
            print(f"ERROR: {exc}", flush=True)
            for child in services:
                if child.process.poll() is not None:
                    print(f"{child.name} exited with {child.process.returncode}\n{child.titled_tail()}")
            return 2
        exited = [child.name for child in services if child.process.poll() is not None]
        print("\n== clean-up", flush=True)
    phases = Phases((burst_start, burst_end), (soak_start, soak_end), args.warmup_minutes * 60)
    return report(args, sampler, phases, burst, soak, exited)


def report(
    args: argparse.Namespace,
    sampler: Sampler,
    phases: Phases,
    burst: LoadResult | None,
    soak: LoadResult,
    exited: list[str],
) -> int:
    points = sampler.points
    lo, hi = phases.window
    print(
        f"\n== RSS in MiB (start-up: when ready; peak: over the whole run; burst pk: during the burst; warm: "
        f"after the soak's first {args.warmup_minutes:g} min; end: end of the soak); slopes by least "
        f"squares over the {(hi - lo) / 60:.1f} min after that, in MiB per minute and per hour"
    )
    loaded: dict[str, Figures] = {}
    idle: dict[str, Figures] = {}
    rows: list[Figures] = []
    for role, label in (("api", "API worker"), ("idle-api", "idle API worker (reference)")):
        series = by_pid(points.get(role, []))
        per_pid = [long_lived(f"{label} {pid}", s, phases) for pid, s in sorted(series.items())]
        rows += per_pid
        target = loaded if role == "api" else idle
        if per_pid:  # the worst one stands for the kind
            target["API worker"] = max(
                per_pid, key=lambda f: f.growth if not math.isnan(f.growth) else -math.inf
            )
    for role, kind, label in (
        ("worker", "Celery main", "Celery main process"),
        ("idle-worker", "Celery main", "idle Celery main (reference)"),
    ):
        figures = long_lived(label, points.get(role, []), phases)
        rows.append(figures)
        (loaded if role == "worker" else idle)[kind] = figures
    for role, label in (("pool", "Celery pool processes"), ("idle-pool", "idle Celery pool (reference)")):
        figures = pool(label, points.get(role, []), phases, args.interval)
        rows.append(figures)
        (loaded if role == "pool" else idle)["Celery pool process"] = figures
    rows.append(long_lived("gunicorn master (diagnostic)", points.get("api-master", []), phases))
    rows.append(long_lived("relay, accrual beat (diagnostic)", points.get("relay", []), phases))
    table(rows)

    flow = [f for f in sampler.flow if lo <= f.t <= hi]
    soak_flow = [f for f in sampler.flow if phases.soak[0] <= f.t <= phases.soak[1]]
    decided = fit([(f.t / 60, float(f.applications - f.undecided)) for f in flow])
    submitted = fit([(f.t / 60, float(f.applications)) for f in flow])
    undecided_slope = fit([(f.t / 60, float(f.undecided)) for f in flow])
    worst = max(soak_flow, key=lambda f: f.undecided, default=None)
    max_undecided = worst.undecided if worst else 0
    worst_at = f" {worst.t - phases.soak[0]:.0f} s into the soak" if worst else ""
    max_pending = max((f.pending_events for f in soak_flow), default=0)
    max_queued = max((f.queued for f in soak_flow), default=0)
    backlog_limit = max(20, round(args.rate * 10))
    kept_up = max_undecided <= backlog_limit
    print("\n== load and pipeline")
    if burst is not None:
        show_load("burst (closed loop)", burst)
    show_load("soak", soak)
    print(
        f"   soak after warm-up: submitted {submitted:.0f}/min, decided {decided:.0f}/min; undecided at "
        f"most {max_undecided} at a sample{worst_at} (trend {undecided_slope:+.1f}/min), pending events "
        f"at most {max_pending}, broker messages waiting at most {max_queued}: "
        f"{'kept up' if kept_up else 'FELL BEHIND'} (criterion: never more than max(20, 10 s of load) = "
        f"{backlog_limit} undecided at a sample)"
    )
    minutes = math.ceil((phases.soak[1] - phases.soak[0]) / 60)
    per_minute = []
    for minute in range(minutes):
        inside = [f for f in soak_flow if minute * 60 <= f.t - phases.soak[0] < (minute + 1) * 60]
        if inside:
            per_minute.append(f"{max(f.undecided for f in inside)}/{max(f.queued for f in inside)}")
    print(f"   soak, minute by minute, most undecided / broker messages waiting: {' '.join(per_minute)}")
    print(
        f"   idle API: {sampler.healthz_ok} GET /healthz answered 200, {sampler.healthz_failed} failed; "
        f"{len(sampler.flow)} samples"
    )
    if sampler.error:
        print(f"   SAMPLER ERROR: {sampler.error}")
    if exited:
        print(f"   EXITED during the run: {', '.join(exited)}")

    print(
        f"\n== verdicts (criterion: the fitted line over the window rises by more than "
        f"max({GROWTH_FLOOR_MIB:g} MiB, {GROWTH_FRACTION * 100:g} % of RSS after warm-up) beyond the idle "
        "reference's: grows)"
    )
    any_growth = False
    for kind in ("API worker", "Celery main", "Celery pool process"):
        mine, ref = loaded.get(kind), idle.get(kind)
        if mine is None or ref is None:
            print(f"   {kind}: no samples")
            any_growth = True
            continue
        grows, why = verdict(mine, ref)
        any_growth |= grows
        per_request = mine.slope * MIB / (soak.rate * 60) if soak.rate else math.nan
        print(
            f"   {kind}: peak {mine.peak:.1f} MiB (start-up {mine.start:.1f}, idle reference's peak "
            f"{ref.peak:.1f}, {mine.peak / ref.peak:.2f}x); slope {mine.slope:+.3f} MiB/min "
            f"({mine.slope * 60:+.1f} MiB/h, {per_request:+.0f} B per request), idle {ref.slope:+.3f} "
            f"MiB/min, difference {mine.slope - ref.slope:+.3f} MiB/min; {why}"
        )
    print(f"machine load average (1, 5, 15 min) at the end: {load_average()}")
    return 1 if any_growth or not kept_up or exited or sampler.error else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--load-generator"]:
        return load_generator(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    defaults = Settings.model_fields
    parser.add_argument("--minutes", type=float, default=10, help="soak length (default 10)")
    parser.add_argument("--warmup-minutes", type=float, default=1, help="left out of the slopes (default 1)")
    parser.add_argument(
        "--rate", type=float, default=5, help="applications per second in the soak (default 5)"
    )
    parser.add_argument(
        "--burst-seconds", type=int, default=30, help="back-to-back load first (default 30; 0: none)"
    )
    parser.add_argument(
        "--burst-connections", type=int, default=32, help="connections of the burst (default 32)"
    )
    parser.add_argument("--interval", type=float, default=2, help="seconds between RSS samples (default 2)")
    parser.add_argument(
        "--workers", type=int, default=defaults["api_workers"].default, help="gunicorn workers"
    )
    parser.add_argument("--threads", type=int, default=defaults["api_threads"].default, help="threads each")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=defaults["worker_concurrency"].default,
        help="Celery pool processes",
    )
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto", help="load generator")
    parser.add_argument("--site", default=DEFAULT_SITE, help=f"coordinator's site of {TRIAL}")
    parser.add_argument("--redis-db", type=int, choices=list(REDIS_DB_RANGE), help="default: first empty one")
    args = parser.parse_args(argv)
    if args.minutes <= args.warmup_minutes or args.warmup_minutes < 0 or args.rate <= 0 or args.interval <= 0:
        parser.error("--minutes must exceed --warmup-minutes (>= 0); --rate and --interval must be positive")
    has_wrk = shutil.which("wrk") is not None
    if args.load == "wrk" and not has_wrk:
        print("--load wrk needs wrk on PATH (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 2
    use_wrk = has_wrk and args.load != "python"
    args.tag = secrets.token_hex(3)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the clean-up must not be interrupted
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    header(args, use_wrk)
    try:
        return run(args, use_wrk)
    except Interrupted as exc:
        print(
            f"\ninterrupted ({exc}); processes stopped, database dropped, Redis database flushed", flush=True
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
