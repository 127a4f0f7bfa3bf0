"""Enrolments that allocate an arm, 40 at a time: allocations per second beside plain enrolments.

    python bench/allocation.py [--backend sqlite|postgres|both] [--per-round 200] [--rounds 2]

On a migrated, seeded stack (targets lifted), `--per-round` x 2 x `--rounds` eligible applicants are
submitted and screened first. Then rounds alternate: plain enrolments (the trial's randomisation scheme
removed, so `POST .../enroll` takes the place and records the status only) and randomised ones (a
stratified permuted-block scheme set again, so each enrolment also locks the scheme's row, draws the
arm at its place in the block, seals it, writes the allocation and `application.allocated`). In each
round 40 threads, started together, each enrol their share through the API (the Flask app in-process,
every thread its own client and pooled connection), and the round's rate is enrolments per second.
Alternating rounds in one run puts both under the same machine load. Issue 15 asks for the figure
beside plain enrolments; there is no target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import delete, func, select

from bench.harness import bench_on, header, options, run
from models import Allocation, RandomisationScheme
from services.randomisation.schemes import configure
from services.schemas.randomisation import RandomisationIn
from services.trials.queries import find_trial
from tests.support.database import set_targets
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack

THREADS = 40
SCHEME = RandomisationIn.model_validate(
    {"method": "permuted_blocks", "strata": ["site"], "block_sizes": [2, 4]}
)


def randomise(stack: Stack, on: bool) -> None:
    """Set a fresh scheme (allocations of earlier rounds moved aside), or remove it."""
    with stack.db.transaction() as session:
        session.execute(delete(Allocation))
        session.execute(delete(RandomisationScheme))
        if on:
            configure(session, "bench", find_trial(session, TRIAL), SCHEME)


def enrol_round(stack: Stack, ids: list[str]) -> float:
    """Enrolments per second, `THREADS` threads sharing `ids`."""
    shares = [ids[n::THREADS] for n in range(THREADS)]
    barrier, failures = threading.Barrier(THREADS + 1), []
    headers = {"Authorization": f"Bearer {stack.coordinator}"}

    def work(share: list[str]) -> None:
        client = stack.app.test_client()
        barrier.wait()
        for application_id in share:
            answer = client.post(f"/api/v1/applications/{application_id}/enroll", headers=headers)
            if answer.status_code != 200:
                failures.append(answer.status_code)

    threads = [threading.Thread(target=work, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} enrolments failed: {sorted(set(failures))}")
    return len(ids) / elapsed


def one_backend(sqlite: bool, per_round: int, rounds: int) -> None:
    with bench_on(sqlite, redis=False) as bench:
        stack = bench.stack
        set_targets(stack, trial=None, site=None)
        print(f"   screening {per_round * 2 * rounds:,} applicants...", flush=True)
        ids = [decide(stack, screening_id=f"B{n:06d}") for n in range(per_round * 2 * rounds)]
        stack.app  # noqa: B018 - built before the clock starts
        plain, allocating = [], []
        for number in range(rounds):
            batch = ids[number * 2 * per_round : (number + 1) * 2 * per_round]
            randomise(stack, on=False)
            plain.append(enrol_round(stack, batch[:per_round]))
            randomise(stack, on=True)
            allocating.append(enrol_round(stack, batch[per_round:]))
            with stack.db.reading() as session:
                allocated = session.scalar(select(func.count()).select_from(Allocation))
                sequences = set(session.scalars(select(Allocation.sequence)))
            assert allocated == per_round and sequences == set(range(1, per_round + 1)), (
                allocated,
                len(sequences),
            )
            print(
                f"   round {number + 1}: plain {plain[-1]:,.1f}/s, randomised {allocating[-1]:,.1f}/s",
                flush=True,
            )
    rate, reference = statistics.median(allocating), statistics.median(plain)
    print(
        f"   randomised enrolments (allocations), {THREADS} at a time: {rate:,.1f} per s "
        f"(median of {rounds} rounds)\n"
        f"   reference, same run: plain enrolments, {THREADS} at a time: {reference:,.1f} per s "
        f"(allocating runs at {rate / reference:.1%} of it)"
    )


def measure(args: argparse.Namespace) -> int:
    header("Allocation at enrolment", "sqlalchemy", "psycopg", "flask")
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        print(f"\n== {backend}")
        one_backend(backend == "sqlite", args.per_round, args.rounds)
    return 0


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    run(parser, measure)
