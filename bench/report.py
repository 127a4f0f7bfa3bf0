"""The recruitment report of a trial with 1,000,000 applications over 50 sites, on PostgreSQL.

    python bench/report.py [--applications 1000000] [--sites 50] [--calls 200]

Builds a fresh database with NCT06359912, 50 sites and the applications (spread over statuses and
two years of weeks) in bulk with SQL, fills the counters the counting consumer keeps from them, then
times GET /api/v1/trials/NCT06359912/recruitment through the Flask app (`--calls` times, after a warm
call) and prints the median. Reference from the same run: the same counts taken with a fresh
`COUNT(*) ... GROUP BY` over the applications table, which is what the report would cost without the
counters. The database (postgresql+psycopg://postgres@127.0.0.1:5432) is dropped afterwards.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import create_engine, text

from config import Settings
from models import Role
from models.audit import AuditKeys
from models.db import Database
from models.migrate import upgrade
from models.sealing import Keyring
from services.app import create_app
from services.tokens import create_token
from services.trials.seed import seed

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TRIAL = "NCT06359912"
STATUSES = ["submitted", "eligible", "ineligible", "needs_review", "enrolled", "withdrawn"]

POPULATE = """
INSERT INTO applications (id, trial_id, site_id, screening_id, status, decision, observations,
    criteria_version, screening_round, screening_deliveries, submitted_at, decided_at, version)
SELECT 'app_bench_' || g, :trial, 'site_bench_' || (g % :sites),  'S' || g,
       (ARRAY['submitted','eligible','ineligible','needs_review','enrolled','withdrawn'])[1 + (g % 6)],
       NULL, '{}'::jsonb, 1, 1, 1, now() - ((g % 730) || ' days')::interval, NULL, 1
FROM generate_series(1, :n) AS g
"""
COUNTERS = [
    """INSERT INTO status_counts (trial_id, site_id, status, count)
       SELECT trial_id, site_id, status, count(*) FROM applications GROUP BY trial_id, site_id, status""",
    """INSERT INTO weekly_counts (trial_id, site_id, week_start, applied, enrolled)
       SELECT trial_id, site_id, date_trunc('week', submitted_at)::date, count(*),
              count(*) FILTER (WHERE status = 'enrolled')
       FROM applications GROUP BY 1, 2, 3""",
    """INSERT INTO screen_failure_counts (trial_id, criterion_id, count)
       SELECT :trial, 'I' || (1 + g % 7), 1000 + g FROM generate_series(0, 6) AS g""",
]
FRESH_COUNT = (
    "SELECT site_id, status, count(*) FROM applications WHERE trial_id = :trial GROUP BY site_id, status"
)


def populate(db: Database, applications: int, sites: int) -> None:
    with db.transaction() as session:
        seed(session)
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sites (site_id, trial_id, name, city, country, status, enrolled_count, "
                "created_at) "
                "SELECT 'site_bench_' || g, :trial, 'Bench site ' || g, 'City ' || g, 'China', 'RECRUITING', "
                "0, now() "
                "FROM generate_series(0, :sites - 1) AS g"
            ),
            {"trial": TRIAL, "sites": sites},
        )
        connection.execute(text(POPULATE), {"trial": TRIAL, "sites": sites, "n": applications})
        for statement in COUNTERS:
            connection.execute(text(statement), {"trial": TRIAL})
        connection.execute(text("ANALYZE"))


def timed(call: object, times: int) -> list[float]:
    durations = []
    for _ in range(times):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applications", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    name = f"accrual_bench_{secrets.token_hex(4)}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    # Observations are sealed at rest and the audit trail is chained: both need keys.
    db = Database(url, Keyring.parse(Keyring.new_entry("k1")), AuditKeys.parse(AuditKeys.new_entry("a1")))
    try:
        upgrade(db)
        started = time.perf_counter()
        populate(db, args.applications, args.sites)
        elapsed = time.perf_counter() - started
        print(f"populated {args.applications:,} applications over {args.sites} sites in {elapsed:.0f} s")
        with db.transaction() as session:
            token = create_token(session, Role.ADMIN)
        settings = Settings(database_url=url, secret_key="bench-only")  # noqa: S106 - a throwaway database
        client = create_app(settings, db).test_client()
        headers = {"Authorization": f"Bearer {token}"}

        def get_report() -> None:
            response = client.get(f"/api/v1/trials/{TRIAL}/recruitment", headers=headers)
            assert response.status_code == 200 and response.get_json()["applied_count"] >= args.applications

        def fresh_count() -> None:
            with db.engine.connect() as connection:
                connection.execute(text(FRESH_COUNT), {"trial": TRIAL}).all()

        get_report()
        report_ms = timed(get_report, args.calls)
        fresh_ms = timed(fresh_count, max(3, args.calls // 10))
        ordered = sorted(report_ms)
        print(
            f"GET .../recruitment, median of {len(report_ms)}: {statistics.median(report_ms):.1f} ms "
            f"(p95 {ordered[int(0.95 * (len(ordered) - 1))]:.1f} ms, "
            f"p99 {ordered[int(0.99 * (len(ordered) - 1))]:.1f} ms)\n"
            f"reference, same run: fresh COUNT(*) GROUP BY site, status over the applications, "
            f"median of {len(fresh_ms)}: {statistics.median(fresh_ms):.1f} ms"
        )
    finally:
        db.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
