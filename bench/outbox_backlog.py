"""The outbox relay against a backlog: events per second over 100,000 pending events, and the purge.

    python bench/outbox_backlog.py [--backend sqlite|postgres|both] [--count 100000]

On a migrated, seeded stack, `--count` pending `application.submitted` events (each of its own
application) are written with Core executemany, and the relay (`workers.relay.relay_once`, batches
of 100 as `accrual beat` runs it, publishing to kombu's in-memory transport so the broker is not what
is measured) is timed until none is pending: claim (FOR UPDATE SKIP LOCKED on PostgreSQL), the
screening tasks sent, the events stamped published and their webhook fan-out recorded. Beside it,
from the same run on the same table: a bare loop that claims the same number of fresh events 100 at a
time with one SELECT off the same index and stamps them with one UPDATE, which is the database's share
of a relay pass. The claim's plan is printed (it must read ix_events_due, scenario 26), and then the
purge of all those events once past ACCRUAL_EVENT_RETENTION_DAYS (rows per second, rows left).
Target: >= 1,000 events per second, twenty times scenario 24's sustained 50 applications per second,
so a backlog of 100,000 drains in under two minutes (exit status 1 when missed).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import func, select, update

from bench.harness import bench_on, header, options, run, unpublished, verdict
from models import Event, EventStatus
from models.base import utcnow
from services.events.catalogue import ApplicationSubmitted
from services.events.outbox import due_events
from tests.support.outbox import claim_plan, insert_events, reads_the_due_index
from tests.support.relay import in_memory_broker
from tests.support.stack import Stack
from workers.maintenance import purge_expired_events
from workers.relay import relay_once

TARGET = 1000
BATCH = 100


def bare_claims(stack: Stack) -> float:
    """Seconds to claim and stamp every pending event with one SELECT and one UPDATE per batch."""
    started = time.perf_counter()
    while True:
        with stack.db.transaction() as session:
            seqs = list(session.scalars(due_events(utcnow(), BATCH).with_only_columns(Event.seq)))
            if not seqs:
                return time.perf_counter() - started
            session.execute(
                update(Event)
                .where(Event.seq.in_(seqs))
                .values(status=EventStatus.PUBLISHED.value, published_at=utcnow())
            )


def relay_all(stack: Stack) -> float:
    """Seconds for the relay to publish every pending event."""
    with in_memory_broker(stack) as app:
        started = time.perf_counter()
        while relay_once(stack.db, app, "bench-relay", BATCH, stack.settings.outbox_max_attempts):
            pass
        return time.perf_counter() - started


def purge_all(stack: Stack) -> tuple[float, int]:
    """Seconds to purge every published event once past retention, and the events left."""
    past = utcnow() - timedelta(days=stack.settings.event_retention_days + 1)
    with stack.db.transaction() as session:
        session.execute(update(Event).where(Event.status == "published").values(published_at=past))
    started = time.perf_counter()
    purge_expired_events(stack.db, stack.settings)
    elapsed = time.perf_counter() - started
    with stack.db.reading() as session:
        return elapsed, int(session.scalar(select(func.count()).select_from(Event)) or 0)


def one_backend(sqlite: bool, count: int) -> float:
    """Print one back-end's figures; the relay's events per second."""
    with bench_on(sqlite, redis=False) as bench:
        stack = bench.stack
        insert_events(stack, count, ApplicationSubmitted())
        reference = bare_claims(stack)
        insert_events(stack, count, ApplicationSubmitted())
        plan = claim_plan(stack)
        relayed = relay_all(stack)
        assert unpublished(stack) == 0
        purged, left = purge_all(stack)
    rate = count / relayed
    print(
        f"   claim plan reads ix_events_due: {'yes' if reads_the_due_index(stack, plan) else 'NO'}\n"
        f"   {count:,} pending events relayed in {relayed:.1f} s: {rate:,.0f} per s\n"
        f"   reference, same run: bare claim + stamp of {count:,} {count / reference:,.0f} per s\n"
        f"   purge of {2 * count:,} published events past retention: {2 * count / purged:,.0f} per s, "
        f"{left} events left (none published)"
    )
    return rate


def measure(args: argparse.Namespace) -> int:
    header("Outbox backlog: relay and purge", "sqlalchemy", "psycopg", "celery", "kombu")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    verdicts = []
    for backend in backends:
        verdicts.append(one_backend(backend == "sqlite", args.count) >= TARGET)
        print(f"   target >= {TARGET:,} per s: {verdict(verdicts[-1])}")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--count", type=int, default=100_000)
    run(parser, measure)
