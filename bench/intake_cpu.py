"""CPU per intake: the server's and PostgreSQL's, for POST /api/v1/applications, against a bare insert.

    python bench/intake_cpu.py [--count 1000]

Issue 13: "CPU per application, server + PostgreSQL ... 12.4 ms; target <= 4 ms". In one process and one
thread, so that the CPU it spends is the request's and nothing else's: the Flask app of a migrated, seeded
stack on a new PostgreSQL database (tests/support/stack.py; its rate limits in memory), called through
Flask's test client --count times with the applicant of tests/support/applicants.py (after 50 as a
warm-up); this process's CPU time (time.process_time, which includes the test client's own small share)
and the CPU of the database's PostgreSQL backends (/proc/PID/stat of every backend serving the database,
so Linux only) per request. The reference, same run: bench/intake_reference.py's bare Flask endpoint,
one JSONB insert with SQLAlchemy Core, measured the same way on its own database. Exit status 0 when
server + PostgreSQL is at most 4 ms per request, 1 when not.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import create_engine, text

from bench.harness import APPLICATIONS, bench_on, header, options, run, verdict
from bench.intake_reference import create_app, submissions
from models.db import make_engine
from tests.support.applicants import eligible_applicant
from tests.support.servers import fresh_pg_database
from tests.support.stack import TRIAL

TARGET_MS, WARMUP = 4.0, 50
TICK = os.sysconf("SC_CLK_TCK")
BACKENDS = text(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def backend_cpu(url: str) -> dict[int, float]:
    """Seconds of CPU so far of each PostgreSQL backend serving the database at `url` (not this query's)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            pids = connection.execute(BACKENDS).scalars()
            return {pid: _cpu_of(pid) for pid in pids}
    finally:
        engine.dispose()


def _cpu_of(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def per_request(url: str, count: int, post: Callable[[int], Any]) -> tuple[float, float]:
    """(this process's CPU, the database's backends' CPU) per request, in ms, over `count` posts."""
    for n in range(WARMUP):
        post(-1 - n)
    before = backend_cpu(url)
    started = time.process_time()
    for n in range(count):
        post(n)
    server = time.process_time() - started
    after = backend_cpu(url)
    database = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    return server / count * 1000, database / count * 1000


def measure(args: argparse.Namespace) -> int:
    header(
        "CPU per intake: POST /api/v1/applications, server and PostgreSQL", "flask", "sqlalchemy", "psycopg"
    )
    with bench_on(sqlite=False, redis=False) as bench, fresh_pg_database() as reference_url:
        stack = bench.stack

        def accrual(n: int) -> None:
            answer = stack.submit(eligible_applicant(f"CPU-{n}"))
            assert answer.status_code == 202, answer.get_json()

        server, database = per_request(stack.settings.database_url, args.count, accrual)
        engine = make_engine(reference_url)
        submissions.metadata.create_all(engine)
        engine.dispose()
        reference_client = create_app(reference_url).test_client()

        def reference(n: int) -> None:
            body = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant(f"REF-{n}")}
            assert reference_client.post(APPLICATIONS, json=body).status_code == 202

        ref_server, ref_database = per_request(reference_url, args.count, reference)
    total = server + database
    print(
        f"\n   Accrual:   server {server:.2f} ms + PostgreSQL {database:.2f} ms = {total:.2f} ms per intake"
    )
    print(
        f"   reference: server {ref_server:.2f} ms + PostgreSQL {ref_database:.2f} ms = "
        f"{ref_server + ref_database:.2f} ms per insert (same run)"
    )
    print(f"   target <= {TARGET_MS:.0f} ms: {verdict(total <= TARGET_MS)}")
    return 0 if total <= TARGET_MS else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--count", type=int, default=1000, help="requests measured (default 1000)")
    run(parser, measure)
