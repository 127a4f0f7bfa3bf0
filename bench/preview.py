"""An amendment previewed: applications per second over a trial's screened applications.

    python bench/preview.py [--backend sqlite|postgres|both] [--count 100000]

On a migrated, seeded stack, NCT06359912 gets `--count` decided applications (inserted in bulk as
bench/rescreen.py inserts them, observations sealed per row), then `preview_amendment`
(services.trials.preview) runs a draft with I4 tightened to Wagner <= 3 over all of them: each read a
batch at a time, its observations opened, evaluated under the current version and under the draft, and
tallied. Beside it, from the same run: the engine alone evaluating the same observations twice (the
current version and the draft, compiled once each), the work the preview cannot avoid. Issue 14 asks
for the figure beside the engine; there is no target.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.harness import bench_on, header, options, run
from bench.rescreen import CRITERIA, populate
from services.trials.criteria import bundled_document, compile_document
from services.trials.preview import preview_amendment
from services.trials.queries import find_trial
from tests.support.criteria import amended
from tests.support.stack import TRIAL


def one_backend(sqlite: bool, count: int) -> None:
    with bench_on(sqlite, redis=False) as bench:
        stack = bench.stack
        profiles = populate(stack, count)
        draft = amended(wagner_max=3)
        with stack.db.reading() as session:
            trial = find_trial(session, TRIAL)
            started = time.perf_counter()
            preview = preview_amendment(session, trial, draft)
            elapsed = time.perf_counter() - started
    assert preview.applications_considered == count
    current, tightened, today = (
        compile_document(bundled_document(CRITERIA)),
        compile_document(draft),
        date.today(),
    )
    started = time.perf_counter()
    for profile in profiles:
        current.evaluate(profile, today)
        tightened.evaluate(profile, today)
    engine = count / (time.perf_counter() - started)
    rate = count / elapsed
    print(
        f"   {count:,} applications previewed in {elapsed:.2f} s: {rate:,.0f} per s "
        f"({len(preview.changed):,} decisions would change; after {preview.after.model_dump()})\n"
        f"   reference, same run: the engine alone, both versions, {engine:,.0f} per s "
        f"(the preview runs at {rate / engine:.1%} of it)"
    )


def measure(args: argparse.Namespace) -> int:
    header("Amendment preview", "sqlalchemy", "psycopg")
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        print(f"\n== {backend}")
        one_backend(backend == "sqlite", args.count)
    return 0


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--count", type=int, default=100_000)
    run(parser, measure)
