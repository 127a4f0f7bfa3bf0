"""Re-screening after a protocol amendment: applications per second, on SQLite and on PostgreSQL.

    python bench/rescreen.py [--backend sqlite|postgres|both] [--count 10000] [--batch 500]

On a migrated, seeded stack, NCT06359912 gets `--count` decided, open applications (inserted in bulk, their
observations sealed as the ORM seals them), then a criteria version with I4 tightened to Wagner <= 3
(tests/support/criteria.py), and `rescreen_trial` (services.applications.rescreening) is timed until every
application is screened under it: evaluation, a new screening round with its 25 criterion results
sealed in one value per application, the changed decisions with their history and events, a transaction
per batch. Beside it, from the same run: the engine alone over the same observations (compiled once),
and compiling the criteria for every application, which is what compiling once per version saves.
Target: >= 2,000 applications per second (exit status 1 when missed).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import func, insert, select

from bench.harness import bench_on, header, options, run, verdict
from models import Application, CountedApplication, Event, Screening
from models.application import observations_binding
from models.base import utcnow
from models.sealing import Sealed, keyring_of
from services.applications.rescreening import rescreen_trial
from services.ids import new_id
from services.reporting.counts import week_start
from services.trials.criteria import amend_criteria, bundled_document, compile_document
from services.trials.queries import find_trial
from tests.support.applicants import eligible_applicant
from tests.support.criteria import amended
from tests.support.stack import TRIAL, Stack

CRITERIA = "NCT06359912.criteria.yaml"
TARGET = 2000


def observations(n: int) -> dict[str, Any]:
    """An applicant of Wagner grade 0-4 (those at 4 fail the amended I4); every seventh to review."""
    applicant = eligible_applicant(f"B-{n}", wagner_grade=n % 5, hemoglobin_g_l=121.0)
    del applicant["screening_id"]
    if n % 7 == 0:
        del applicant["hiv_positive"]
    return applicant


def populate(stack: Stack, count: int) -> list[dict[str, Any]]:
    """`count` applications decided under version 1, inserted in bulk; their observations."""
    compiled = compile_document(bundled_document(CRITERIA))
    today, now, keyring = date.today(), utcnow(), keyring_of(stack.db.engine.dialect)
    rows, profiles, failed = [], [observations(n) for n in range(count)], []
    for n, profile in enumerate(profiles):
        evaluation, application_id = compiled.evaluate(profile, today), new_id("app")
        decision = evaluation.decision
        failed.append(list(evaluation.deciding) if decision == "ineligible" else [])
        # Core bypasses the ORM's sealing hook: seal each value bound to its own row, as the ORM would.
        sealed = Sealed(profile, keyring.seal(profile, observations_binding(application_id)))
        rows.append(
            {
                "id": application_id, "trial_id": TRIAL, "site_id": stack.site_id, "screening_id": f"B-{n}",
                "status": decision, "decision": decision, "observations": sealed, "criteria_version": 1,
                "screening_round": 1, "screening_deliveries": 1, "submitted_at": now, "decided_at": now,
                "version": 2,
            }
        )  # fmt: skip
    # What the counters hold for each, as intake and screening would have left it: a re-screening that
    # moves a status moves its counts in the same transaction.
    counted = [
        {
            "application_id": row["id"], "trial_id": TRIAL, "site_id": stack.site_id, "status": row["status"],
            "applied_week": week_start(today), "enrolled_week": None, "failed_criteria": excluded,
        }
        for row, excluded in zip(rows, failed, strict=True)
    ]  # fmt: skip
    with stack.db.transaction() as session:
        for start in range(0, count, 2000):
            session.execute(insert(Application), rows[start : start + 2000])
            session.execute(insert(CountedApplication), counted[start : start + 2000])
    return profiles


def engine_rates(profiles: list[dict[str, Any]]) -> tuple[float, float]:
    """Applications per second of the engine compiled once, and compiling for each application."""
    document, today = bundled_document(CRITERIA), date.today()
    compiled = compile_document(document)
    started = time.perf_counter()
    for profile in profiles:
        compiled.evaluate(profile, today)
    once = len(profiles) / (time.perf_counter() - started)
    sample = profiles[: max(1, len(profiles) // 10)]
    started = time.perf_counter()
    for profile in sample:
        compile_document(document).evaluate(profile, today)
    return once, len(sample) / (time.perf_counter() - started)


def one_backend(sqlite: bool, count: int, batch: int) -> float:
    """Print one back-end's figures; its applications per second."""
    with bench_on(sqlite, redis=False) as bench:
        stack = bench.stack
        profiles = populate(stack, count)
        with stack.db.transaction() as session:
            amend_criteria(session, find_trial(session, TRIAL), amended(wagner_max=3), "bench")
            event_id = session.scalars(select(Event.id).where(Event.type == "trial.criteria_changed")).one()
        started = time.perf_counter()
        tally = rescreen_trial(stack.db, TRIAL, 2, event_id, batch_size=batch)
        elapsed = time.perf_counter() - started
        with stack.db.reading() as session:
            below = session.scalar(select(func.count()).where(Application.criteria_version < 2))
            screenings = session.scalar(select(func.count()).select_from(Screening))
    assert tally.finished and tally.screened == count and below == 0 and screenings == count
    once, each = engine_rates(profiles)
    print(
        f"   {count} applications re-screened in {elapsed:.2f} s: {count / elapsed:,.0f} per s "
        f"({tally.changed} decisions changed)\n"
        f"   reference, same run: the engine alone {once:,.0f} per s; compiling per application "
        f"{each:,.0f} per s"
    )
    return count / elapsed


def measure(args: argparse.Namespace) -> int:
    header("Re-screening after an amendment", "sqlalchemy", "psycopg")
    met = True
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        rate = one_backend(backend == "sqlite", args.count, args.batch)
        print(f"   target >= {TARGET:,} per s: {verdict(rate >= TARGET)}")
        met &= rate >= TARGET
    return 0 if met else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    run(parser, measure)
