"""The recruitment report of a trial with 1,000,000 applications over 50 sites, on PostgreSQL.

    python bench/report.py [--applications 1000000] [--sites 50] [--calls 200]

On a migrated, seeded stack on a new PostgreSQL database, NCT06359912 gets --sites more sites and the
applications (spread over statuses and two years of weeks) in bulk with SQL, and the counters the counting
consumer keeps are filled from them. Then GET /api/v1/trials/NCT06359912/recruitment is timed through the
Flask app, --calls times after a warm call. Reference from the same run: the same counts taken with a
fresh `COUNT(*) ... GROUP BY` over the applications, what the report would cost without the counters.
Target: median < 100 ms (exit status 1 when missed).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import text

from bench.harness import bench_on, header, median, options, run, spread, verdict
from tests.support.http import auth
from tests.support.stack import TRIAL

TARGET_MS = 100.0
POPULATE = [
    """INSERT INTO sites (site_id, trial_id, name, city, country, status, enrolled_count, created_at)
       SELECT 'site_bench_' || g, :trial, 'Bench site ' || g, 'City ' || g, 'China', 'RECRUITING', 0, now()
       FROM generate_series(0, :sites - 1) AS g""",
    """INSERT INTO applications (id, trial_id, site_id, screening_id, status, decision, observations,
           criteria_version, screening_round, screening_deliveries, submitted_at, decided_at, version)
       SELECT 'app_bench_' || g, :trial, 'site_bench_' || (g % :sites),  'S' || g,
              (ARRAY['submitted','eligible','ineligible','needs_review','enrolled','withdrawn'])[1 + (g % 6)],
              NULL, '{}'::jsonb, 1, 1, 1, now() - ((g % 730) || ' days')::interval, NULL, 1
       FROM generate_series(1, :n) AS g""",
    """INSERT INTO status_counts (trial_id, site_id, status, count)
       SELECT trial_id, site_id, status, count(*) FROM applications GROUP BY trial_id, site_id, status""",
    """INSERT INTO weekly_counts (trial_id, site_id, week_start, applied, enrolled)
       SELECT trial_id, site_id, date_trunc('week', submitted_at)::date, count(*),
              count(*) FILTER (WHERE status = 'enrolled')
       FROM applications GROUP BY 1, 2, 3""",
    """INSERT INTO screen_failure_counts (trial_id, criterion_id, count)
       SELECT :trial, 'I' || (1 + g % 7), 1000 + g FROM generate_series(0, 6) AS g""",
    "ANALYZE",
]
FRESH_COUNT = (
    "SELECT site_id, status, count(*) FROM applications WHERE trial_id = :trial GROUP BY site_id, status"
)


def timed(call: Callable[[], object], times: int) -> list[float]:
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def measure(args: argparse.Namespace) -> int:
    header("The recruitment report of a large trial", "flask", "sqlalchemy", "psycopg")
    with bench_on(sqlite=False, redis=False) as bench:
        stack = bench.stack
        started = time.perf_counter()
        with stack.db.engine.begin() as connection:
            for statement in POPULATE:
                connection.execute(
                    text(statement), {"trial": TRIAL, "sites": args.sites, "n": args.applications}
                )
        took = time.perf_counter() - started
        print(f"   populated {args.applications:,} applications over {args.sites} more sites in {took:.0f} s")

        def get_report() -> None:
            response = stack.client.get(f"/api/v1/trials/{TRIAL}/recruitment", headers=auth(stack.admin))
            assert response.status_code == 200 and response.get_json()["applied_count"] >= args.applications

        def fresh_count() -> None:
            with stack.db.engine.connect() as connection:
                connection.execute(text(FRESH_COUNT), {"trial": TRIAL}).all()

        get_report()
        report_ms, fresh_ms = timed(get_report, args.calls), timed(fresh_count, max(3, args.calls // 10))
    print(f"   GET .../recruitment: {spread(report_ms)}")
    print(f"   reference, same run: a fresh COUNT(*) GROUP BY site, status, median of {len(fresh_ms)}: "
          f"{median(fresh_ms):.1f} ms")  # fmt: skip
    print(f"   target median < {TARGET_MS:.0f} ms: {verdict(median(report_ms) < TARGET_MS)}")
    return 0 if median(report_ms) < TARGET_MS else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--applications", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--calls", type=int, default=200)
    run(parser, measure)
