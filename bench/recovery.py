"""Recovery from a dead worker: a worker SIGKILLed during a burst, the time from its restart to the last
decision.

    python bench/recovery.py [--sqlite] [--count 200] [--kill-after 30] [--skip-reference]

Issue 13 item 7: "with a worker SIGKILLed during a burst of 200 submissions, the last application was
decided 61 s after the restart (the visibility timeout and the sweep). Make the work of a dead worker
come back within 10 s."

On a migrated, seeded stack (a new PostgreSQL database and a redis-server of the benchmark's own; --sqlite:
a SQLite file and the embedded broker), twice:

1. heartbeats on (the defaults): `accrual api`, `accrual worker` (2 pool processes) and `accrual beat`;
   --count applications POSTed over 8 connections; once --kill-after of them are decided, the worker's
   whole process group is SIGKILLed and a new worker started at once; the figure is the time from that
   start to the last decision;
2. the reference, in the same run: the same with heartbeats that never come in time
   (ACCRUAL_WORKER_HEARTBEAT_SECONDS=60, a death noticed after 5 minutes), so the work comes back as it
   did before them: the broker's visibility timeout or the sweep (ACCRUAL_SWEEP_AFTER_SECONDS, 60 s).

Each run checks that every application was decided exactly once. Exit status 0 when the recovery takes
under 10 s, 1 when not, 2 when a check fails or the set-up does.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import func, select

from bench.harness import (
    Bench,
    BenchError,
    bench_on,
    header,
    load_average,
    options,
    post_applications,
    run,
    undecided,
    verdict,
)
from models import Application
from tests.support.pipeline import assert_decided_exactly_once

CONCURRENCY, TARGET_S = 2, 10.0


def decided_so_far(bench: Bench, prefix: str) -> int:
    with bench.stack.db.reading() as session:
        query = select(func.count()).where(
            Application.screening_id.startswith(prefix), Application.decided_at.is_not(None)
        )
        return int(session.scalar(query) or 0)


def last_decided(bench: Bench, prefix: str) -> float:
    with bench.stack.db.reading() as session:
        at = session.scalar(
            select(func.max(Application.decided_at)).where(Application.screening_id.startswith(prefix))
        )
    if at is None:
        raise BenchError("nothing was decided")
    return float(at.timestamp())


def forget_killed(bench: Bench, pid: int) -> None:
    """Take the killed worker out of the phase's processes, whose exit would otherwise fail the wait."""
    processes = bench.processes
    assert processes is not None
    index = next(i for i, child in enumerate(processes.children) if child.pid == pid)
    processes.children.pop(index).wait(10)
    processes.logs.pop(index).close()


def killed_mid_burst(bench: Bench, args: argparse.Namespace, prefix: str, **settings: object) -> float:
    """Seconds from the new worker's start to the last decision, the first worker killed mid-burst."""
    stack = bench.stack
    env = bench.env(worker_concurrency=CONCURRENCY, **settings)
    with bench.phase():
        port = bench.serve("api", ["api"], env)
        worker = bench.start("worker", ["worker"], env)
        bench.start("beat", ["beat"], env)
        burst = threading.Thread(
            target=post_applications, args=(port, stack, prefix, 8), kwargs={"count": args.count}, daemon=True
        )
        burst.start()
        bench.until(
            lambda: decided_so_far(bench, f"{prefix}-") >= args.kill_after, 60, f"{args.kill_after} decisions"
        )
        os.killpg(worker, signal.SIGKILL)  # the worker and its pool, whatever they held
        forget_killed(bench, worker)
        decided_then = decided_so_far(bench, f"{prefix}-")
        restarted = time.time()
        bench.start("worker-2", ["worker"], env)
        burst.join()
        bench.drain(lambda: undecided(stack, f"{prefix}-"), "the decisions after the restart")
        seconds = last_decided(bench, prefix) - restarted
    with stack.db.reading() as session:
        ids = list(session.scalars(select(Application.id).where(Application.screening_id.startswith(prefix))))
    assert_decided_exactly_once(stack, ids)
    print(
        f"   killed with {decided_then} of {len(ids)} decided (at least); restart -> last decision "
        f"{seconds:.1f} s; every application decided exactly once; load average {load_average()}",
        flush=True,
    )
    return seconds


def measure(args: argparse.Namespace) -> int:
    header("Accrual recovery from a worker SIGKILLed mid-burst", "celery", "kombu", "redis", "sqlalchemy")
    with bench_on(args.sqlite) as bench:
        print(f"\n== heartbeats on: {args.count} applications, the worker killed after {args.kill_after}")
        recovered = killed_mid_burst(bench, args, "H")
        reference = None
        if not args.skip_reference:
            print("\n== reference: no heartbeat in time (the visibility timeout and the sweep)", flush=True)
            reference = killed_mid_burst(bench, args, "R", worker_heartbeat_seconds=60)
    print(f"\nSummary ({bench.description})")
    print(f"   restart -> last decision: {recovered:.1f} s with heartbeats", end="")
    print(f"; {reference:.1f} s without (same run)" if reference is not None else "")
    print(f"   target < {TARGET_S:.0f} s: {verdict(recovered < TARGET_S)}")
    return 0 if recovered < TARGET_S else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--sqlite", action="store_true", help="the embedded defaults, not PostgreSQL + Redis")
    parser.add_argument("--count", type=int, default=200, help="applications in the burst (default 200)")
    parser.add_argument("--kill-after", type=int, default=30, help="decisions before the kill (default 30)")
    parser.add_argument("--skip-reference", action="store_true", help="skip the slow run without heartbeats")
    run(parser, measure)
