"""Memory: RSS of the API's gunicorn workers and of the Celery worker under intake, and whether they grow.

    python bench/memory.py [--minutes 10] [--warmup-minutes 1] [--rate 5] [--burst-seconds 30]
                           [--burst-connections 32]
    python bench/memory.py --minutes 1 --warmup-minutes 0.25 --burst-seconds 5    (the shortest sensible run)

On a migrated, seeded stack on a new PostgreSQL database with a redis-server of the benchmark's own:
`accrual api` (gunicorn), `accrual worker` and `accrual beat` (the relay), loaded; and as the reference,
idle on the same database and broker, a second `accrual api` asked only GET /healthz once a second and a
second `accrual worker` consuming a queue nobody uses. Once a first application is decided: a burst
(--burst-connections connections back to back for --burst-seconds), a wait until the pipeline has
drained, a soak of --minutes at a steady --rate applications per second (open loop, from this process),
and a wait for the last decisions. Every 2 s the RSS of every process (psutil) and the undecided
applications are sampled.

Printed per kind of process (API worker, Celery main process, Celery pool process), loaded and idle: RSS
at start-up and at its peak, and the least-squares slope of RSS over the soak after its first
--warmup-minutes. Celery replaces a pool process after 1,000 tasks; for pool processes the slope is of the
peak each one reached against the time it was replaced, when three or more were. A kind grows when its
fitted rise over that window exceeds the idle reference's by more than max(1 MiB, 1 % of its RSS); the
pipeline kept up when no sample of the soak saw more than max(20, 10 s of load) undecided. Exit status 0
when nothing grows and the pipeline kept up, 1 otherwise.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import psutil

from bench.harness import (
    Bench,
    bench_on,
    header,
    options,
    post_applications,
    run,
    status,
    undecided,
    unpublished,
    verdict,
)
from tests.support.servers import free_port

MIB = 1024 * 1024
INTERVAL = 2  # seconds between samples
IDLE_QUEUE = "memory-bench-idle"
KINDS = {
    "API worker": ("api", "idle-api"),
    "Celery main": ("worker", "idle-worker"),
    "Celery pool": ("pool", "idle-pool"),
}


class Sampler:
    """A thread: every INTERVAL s the RSS of each role's processes and the undecided applications; every
    second a GET /healthz to the idle API."""

    def __init__(self, bench: Bench, roles: dict[str, tuple[int, bool]], idle_port: int) -> None:
        self.bench, self.idle_port = bench, idle_port
        self.roles = roles  # role -> (pid, whether the role is its children rather than itself)
        self.rss: dict[str, list[tuple[float, int, float]]] = defaultdict(list)  # (t, pid, MiB)
        self.undecided: list[tuple[float, int]] = []
        self.healthz: Counter[int] = Counter()
        self.started, self.stopping = time.monotonic(), threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def now(self) -> float:
        return time.monotonic() - self.started

    def sample(self) -> None:
        t = self.now()
        for role, (pid, children) in self.roles.items():
            with suppress(psutil.Error):
                main = psutil.Process(pid)
                for process in main.children() if children else [main]:
                    with suppress(psutil.Error):
                        self.rss[role].append((t, process.pid, process.memory_info().rss / MIB))
        self.undecided.append((t, undecided(self.bench.stack)))

    def run(self) -> None:
        for tick in itertools.count():
            if tick % INTERVAL == 0:
                self.sample()
            self.healthz[status(self.idle_port, "/healthz")] += 1
            if self.stopping.wait(1.0):
                return

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)
        self.sample()


def fit(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y on t; NaN with fewer than 3 points."""
    if len(points) < 3 or len({t for t, _ in points}) < 2:
        return math.nan
    return statistics.linear_regression([t for t, _ in points], [y for _, y in points]).slope


@dataclass
class Figures:
    start: float  # MiB at the first sample: every process ready, before the first request
    peak: float
    level: float  # MiB, mean over the window
    slope: float  # MiB per minute over the window
    rise: float  # MiB the fitted line rises over the window
    note: str = ""

    def __str__(self) -> str:
        return (
            f"start-up {self.start:.1f}, peak {self.peak:.1f} MiB; slope {self.slope:+.3f} MiB/min "
            f"({self.slope * 60:+.1f} MiB/h), rise {self.rise:+.2f} MiB"
            + (f" ({self.note})" if self.note else "")
        )


def figures(points: list[tuple[float, int, float]], window: tuple[float, float], pool: bool) -> Figures:
    lo, hi = window
    inside = [(t / 60, rss) for t, _, rss in points if lo <= t <= hi]
    slope, note = fit(inside), ""
    if pool:  # the peak of each process replaced in the window, against when it went
        lives: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for t, pid, rss in points:
            lives[pid].append((t, rss))
        last = max(t for t, _, _ in points)
        ends = [
            (s[-1][0] / 60, max(r for _, r in s)) for s in lives.values() if lo <= s[-1][0] < last - INTERVAL
        ]
        if len(ends) >= 3:
            slope, note = (
                fit(ends),
                f"{len(ends)} of {len(lives)} replaced: their peaks against when they went",
            )
    first = min(t for t, _, _ in points)
    return Figures(
        start=statistics.fmean(rss for t, _, rss in points if t == first),
        peak=max(rss for _, _, rss in points),
        level=statistics.fmean(rss for _, rss in inside) if inside else math.nan,
        slope=slope,
        rise=slope * (hi - lo) / 60,
        note=note,
    )


def started(bench: Bench, name: str, args: list[str], children: int) -> int:
    """`accrual ARGS` once it has `children` child processes (gunicorn's workers, Celery's pool); its pid."""
    pid = bench.start(name, args)
    bench.until(lambda: len(psutil.Process(pid).children()) >= children, 90, f"{name}'s {children} children")
    return pid


def measure(args: argparse.Namespace) -> int:
    header(
        "Accrual memory: RSS of the API's and the worker's processes under intake",
        "gunicorn",
        "celery",
        "psutil",
    )
    with bench_on(sqlite=False) as bench, bench.phase():
        stack, settings = bench.stack, bench.stack.settings
        ports = {name: free_port() for name in ("api", "idle-api")}
        api, idle_api = (
            started(bench, name, ["api", "--port", str(port)], settings.api_workers)
            for name, port in ports.items()
        )
        worker = started(bench, "worker", ["worker"], settings.worker_concurrency)
        idle_worker = started(
            bench, "idle-worker", ["worker", "--queues", IDLE_QUEUE], settings.worker_concurrency
        )
        bench.start("beat", ["beat"])
        bench.until(lambda: all(status(p, "/healthz") == 200 for p in ports.values()), 90, "the APIs")
        roles = {"api": (api, True), "idle-api": (idle_api, True), "worker": (worker, False),
                 "idle-worker": (idle_worker, False), "pool": (worker, True),
                 "idle-pool": (idle_worker, True)}  # fmt: skip
        sampler = Sampler(bench, roles, ports["idle-api"])
        sampler.thread.start()
        post_applications(ports["api"], stack, "F", 1, count=1)
        bench.drain(lambda: undecided(stack), "the first decision")
        print(
            f"   a first application decided; burst: {args.burst_connections} connections, "
            f"{args.burst_seconds:g} s"
        )
        burst = post_applications(
            ports["api"], stack, "B", args.burst_connections, seconds=args.burst_seconds
        )
        print(f"   {burst.summary()}", flush=True)
        bench.drain(lambda: undecided(stack) + unpublished(stack), "the burst's backlog", interval=1)
        print(f"   soak: {args.minutes:g} min at {args.rate:g} per s", flush=True)
        soak_start = sampler.now()
        soak = post_applications(ports["api"], stack, "S", 4, seconds=args.minutes * 60, rate=args.rate)
        soak_end = sampler.now()
        print(f"   {soak.summary()}; at most {soak.max_lag_ms:.0f} ms behind schedule", flush=True)
        bench.drain(lambda: undecided(stack) + unpublished(stack), "the soak's last decisions", interval=1)
        sampler.stop()
    window = (soak_start + args.warmup_minutes * 60, soak_end)
    worst = max((n for t, n in sampler.undecided if soak_start <= t <= soak_end), default=0)
    kept_up = worst <= max(20, args.rate * 10)
    print(
        f"\n== RSS (MiB); slopes over the {(window[1] - window[0]) / 60:.1f} min of the soak after warm-up\n"
        f"   pipeline: at most {worst} undecided at a sample of the soak (criterion max(20, 10 s of load)): "
        f"{'kept up' if kept_up else 'FELL BEHIND'}; the idle API answered {dict(sampler.healthz)}"
    )
    grows = False
    for kind, (loaded_role, idle_role) in KINDS.items():
        loaded = figures(sampler.rss[loaded_role], window, pool=kind == "Celery pool")
        idle = figures(sampler.rss[idle_role], window, pool=kind == "Celery pool")
        allowance = max(1.0, 0.01 * loaded.level)
        excess = loaded.rise - (0.0 if math.isnan(idle.rise) else idle.rise)
        grown = not excess <= allowance  # NaN (too few samples) counts as growing
        grows |= grown
        indent = " " * (len(kind) + 5)
        print(
            f"   {kind}: {loaded}\n{indent}idle reference: {idle}\n{indent}rise beyond the idle one's "
            f"{excess:+.2f} MiB, allowance {allowance:.2f} MiB: {'GROWS' if grown else 'no growth'}"
        )
    print(f"   verdict: {verdict(kept_up and not grows)}")
    return 0 if kept_up and not grows else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--minutes", type=float, default=10, help="soak length (default 10)")
    parser.add_argument("--warmup-minutes", type=float, default=1, help="left out of the slopes (default 1)")
    parser.add_argument(
        "--rate", type=float, default=5, help="applications per second in the soak (default 5)"
    )
    parser.add_argument(
        "--burst-seconds", type=float, default=30, help="back-to-back load first (default 30)"
    )
    parser.add_argument(
        "--burst-connections", type=int, default=32, help="connections of the burst (default 32)"
    )
    run(parser, measure)
