"""End-to-end latency: submission to decision through API, outbox, relay, broker and worker, one at a time.

    python bench/latency.py [--backend sqlite|postgres|both] [--count 200]

`accrual serve` (API, worker and relay in one command) on a migrated, seeded stack: a SQLite file with the
embedded broker, or PostgreSQL with a redis-server of the benchmark's own. After 5 warm-up applications,
200 GET /healthz round trips (no database, no broker) are the reference; then --count applications one
after another over one keep-alive connection, each POSTed and then polled with GET every 5 ms until it is
no longer submitted. Printed per back-end: client-observed latency (POST sent -> the GET showing the
decision, so up to one polling interval and a GET more) and server side (decided_at - submitted_at), and
beside them from the same run the GET /healthz round trip and the POST alone. Target: median < 100 ms on
PostgreSQL + Redis (exit status 1 when missed).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.harness import (
    APPLICATIONS,
    BenchError,
    Client,
    bench_on,
    header,
    median,
    options,
    run,
    spread,
    verdict,
)
from tests.support.applicants import eligible_applicant
from tests.support.stack import TRIAL, Stack

POLL = 0.005
DECISION_TIMEOUT = 30.0
WARMUP = 5
TARGET_MS = 100.0


def one_application(client: Client, stack: Stack, screening_id: str) -> tuple[float, float, float]:
    """(client-observed, server-side, POST alone) ms of one applicant submitted and polled until decided."""
    body = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant(screening_id)}
    started = time.perf_counter()
    status, created = client.call("POST", APPLICATIONS, body)
    posted = time.perf_counter()
    if status != 202:
        raise BenchError(f"POST {APPLICATIONS} answered {status}: {created}")
    while True:
        status, view = client.call("GET", f"{APPLICATIONS}/{created['id']}")
        if status != 200:
            raise BenchError(f"GET {APPLICATIONS}/{created['id']} answered {status}: {view}")
        if view["status"] != "submitted":
            break
        if time.perf_counter() - started > DECISION_TIMEOUT:
            raise BenchError(f"{screening_id} still submitted after {DECISION_TIMEOUT:.0f} s")
        time.sleep(POLL)
    decided = time.perf_counter()
    server = datetime.fromisoformat(view["decided_at"]) - datetime.fromisoformat(view["submitted_at"])
    return (decided - started) * 1000, server.total_seconds() * 1000, (posted - started) * 1000


def one_backend(sqlite: bool, count: int) -> float:
    """Print the figures of one back-end; the median client-observed latency."""
    with bench_on(sqlite) as bench, bench.phase():
        client = Client(bench.serve("serve", ["serve"]), bench.stack.coordinator)
        for n in range(WARMUP):
            one_application(client, bench.stack, f"WARM-{n}")
        healthz = []
        for _ in range(200):
            started = time.perf_counter()
            if client.call("GET", "/healthz")[0] != 200:
                raise BenchError("GET /healthz did not answer 200")
            healthz.append((time.perf_counter() - started) * 1000)
        print(f"   {count} sequential applications, polling every {POLL * 1000:.0f} ms", flush=True)
        samples = [one_application(client, bench.stack, f"BENCH-{n}") for n in range(count)]
        client.close()
    print(f"   client-observed, POST sent -> GET decided:  {spread([s[0] for s in samples])}")
    print(f"   server side, decided_at - submitted_at:     {spread([s[1] for s in samples])}")
    print(f"   reference: GET /healthz round trip, median of {len(healthz)}: {median(healthz):.2f} ms")
    print(
        f"   reference: the POST alone (-> 202), median of {count}: {median([s[2] for s in samples]):.2f} ms"
    )
    return median([s[0] for s in samples])


def measure(args: argparse.Namespace) -> int:
    header("Accrual end-to-end latency, one application at a time", "celery", "gunicorn", "sqlalchemy")
    met = True
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        latency = one_backend(backend == "sqlite", args.count)
        if backend == "postgres":
            met = latency < TARGET_MS
            print(f"   target median < {TARGET_MS:.0f} ms on PostgreSQL + Redis: {verdict(met)}")
    return 0 if met else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--count", type=int, default=200, help="measured applications per back-end")
    run(parser, measure)
