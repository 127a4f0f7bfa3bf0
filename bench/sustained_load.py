"""Sustained load (RELIABILITY.md section 7, scenario 24): applications POSTed at a steady rate for minutes
through `accrual api` while `accrual worker` processes and `accrual beat` decide them, PostgreSQL + Redis.

    python bench/sustained_load.py [--rate 50] [--duration 600] [--workers 4] [--connections 8]

Both servers get the same open-loop schedule (the n-th POST due at start + n / rate over --connections
keep-alive connections, bench/harness.py), each on its own new database of the same PostgreSQL:

- Accrual: `accrual api` (gunicorn as configured) with --workers `accrual worker` processes of one pool
  process each and one `accrual beat`, all running while the load runs;
- reference: bench/intake_reference.py, a bare Flask endpoint inserting the JSON body as one row with
  SQLAlchemy Core under the same gunicorn setup, loaded at the same rate for min(--duration, 60) s first.

Printed: the POST latency (median, p95, p99) of both; every non-202 answer; whether the queue drained and
submitted == decided, each decided exactly once; the workers' RSS (main and pool processes) after the
first minute and at the end, beside their RSS at start-up; and deadlock or serialization errors found in
the logs. Exit status 0 when every POST was accepted, every application decided once, no such error was
logged and no worker grew by more than 64 MiB after its first minute; 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import psutil

from bench.harness import (
    Bench,
    Posts,
    bench_on,
    header,
    options,
    post_applications,
    run,
    spread,
    undecided,
    unpublished,
    verdict,
)
from tests.support.pipeline import assert_decided_exactly_once
from tests.support.servers import fresh_pg_database

MIB = 1024 * 1024
GROWTH_BOUND_MIB = 64.0
REFERENCE_SECONDS = 60.0
CONTENTION = ("deadlock detected", "DeadlockDetected", "could not serialize", "SerializationFailure")


def gunicorn_env(bench: Bench, **settings: object) -> dict[str, str]:
    """The child's environment with the gunicorn setup spelt out, which the reference reads too."""
    configured = bench.stack.settings
    return bench.env(api_workers=configured.api_workers, api_threads=configured.api_threads, **settings)


def rss_mib(pid: int) -> float:
    main = psutil.Process(pid)
    return float(sum(p.memory_info().rss for p in [main, *main.children(recursive=True)])) / MIB


def reference(bench: Bench, args: argparse.Namespace) -> Posts:
    with fresh_pg_database() as url, bench.phase():
        port = bench.serve(
            "reference",
            [],
            {**gunicorn_env(bench), "INTAKE_REFERENCE_DATABASE_URL": url},
            "bench.intake_reference",
        )
        seconds = min(args.duration, REFERENCE_SECONDS)
        return post_applications(port, bench.stack, "REF", args.connections, seconds=seconds, rate=args.rate)


def accrual(bench: Bench, args: argparse.Namespace) -> tuple[Posts, dict[str, list[float]], list[str]]:
    """The load against Accrual: its POSTs, each worker's RSS at start, after a minute and at the end, and
    the contention errors its logs hold."""
    with bench.phase():
        env = gunicorn_env(bench, worker_concurrency=1)
        port = bench.serve("api", ["api"], env)
        workers = {f"worker-{n}": bench.start(f"worker-{n}", ["worker"], env) for n in range(args.workers)}
        bench.start("beat", ["beat"], env)
        bench.until(
            lambda: all(len(psutil.Process(p).children()) == 1 for p in workers.values()), 60, "pools"
        )
        memory = {name: [rss_mib(pid)] for name, pid in workers.items()}

        def sample() -> None:
            for name, pid in workers.items():
                memory[name].append(rss_mib(pid))

        minute = threading.Timer(min(60.0, args.duration / 2), sample)
        minute.start()
        posts = post_applications(
            port, bench.stack, "LOAD", args.connections, seconds=args.duration, rate=args.rate
        )
        minute.join()
        bench.drain(lambda: unpublished(bench.stack) + undecided(bench.stack, "LOAD"), "decisions")
        sample()
        assert bench.processes is not None
        logs = "".join(bench.processes.log(name) for name in ["api", "beat", *workers])
        return posts, memory, [word for word in CONTENTION if word in logs]


def measure(args: argparse.Namespace) -> int:
    header(
        f"Sustained load: {args.rate}/s for {args.duration:g} s, {args.workers} workers", "celery", "gunicorn"
    )
    with bench_on(sqlite=False) as bench:
        ref = reference(bench, args)
        posts, memory, contention = accrual(bench, args)
        try:
            assert_decided_exactly_once(bench.stack, list(posts.sent))
            once = True
        except AssertionError:
            once = False
    print(f"reference POST: {spread(ref.post_ms)}; refused {dict(ref.refused) or 0}")
    print(f"Accrual   POST: {spread(posts.post_ms)}; refused {dict(posts.refused) or 0}")
    print(f"          {posts.summary()}; at worst {posts.max_lag_ms:.0f} ms behind the schedule")
    growth = 0.0
    for name, (start, first_minute, end) in memory.items():
        growth = max(growth, end - first_minute)
        print(
            f"{name}: RSS at start {start:.1f} MiB, after the first minute {first_minute:.1f}, "
            f"at the end {end:.1f}"
        )
    print(f"deadlock/serialization errors in the logs: {contention or 'none'}")
    print(f"submitted == decided, each once: {once}")
    met = once and not posts.refused and not contention and growth <= GROWTH_BOUND_MIB
    print(
        f"{verdict(met)}: all accepted, all decided once, no contention, RSS growth {growth:.1f} MiB (<= 64)"
    )
    return 0 if met else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="applications per second (default 50)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--workers", type=int, default=4, help="`accrual worker` processes (default 4)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (default 8)")
    run(parser, measure)
