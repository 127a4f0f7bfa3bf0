"""Webhook delivery latency: from an event's commit to the receiver's 2xx, at a steady rate.

    python bench/webhooks.py [--sqlite] [--events 1000] [--rate 5] [--dispatch-interval SECONDS]

On a migrated, seeded stack (PostgreSQL with a redis-server of the benchmark's own; --sqlite: a SQLite file
and the embedded broker), a subscription to trial.status_changed through the API pointing at a loopback
receiver in this process (tests/support/webhook_receiver.py, answering 200), `accrual worker` and `accrual
beat` (the relay and the webhook dispatcher). After 5 warm-up events, 200 signed POSTs to the receiver from
this process (services.notifications.webhooks.send, what a worker sends per attempt, without database and
broker) are the reference; then --events events at --rate per second, each in its own transaction
(services.events.outbox.add_event, what an admin's status change writes). Latency: the receiver's arrival
of the request whose webhook-id is the event's, minus the commit (one clock). Printed: median, p95, p99 and
max, and beside them the reference POST and the dispatcher's polling interval, which a due delivery waits
for (half of it on average). Every event must arrive exactly once and its delivery end succeeded (exit
status 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import func, select

from bench.harness import BenchError, bench_on, header, median, options, run, spread
from models import WebhookDelivery
from services.events.catalogue import TrialStatusChanged
from services.events.outbox import add_event
from services.notifications.webhooks import Request, new_secret, send
from tests.support.stack import TRIAL, Stack
from tests.support.webhook_receiver import Receiver, receiving
from tests.support.webhooks import pending, subscribe

EVENT_TYPE = "trial.status_changed"
WARMUP = 5


def status_change(i: int) -> TrialStatusChanged:
    """An admin's status change, alternately closing and re-opening the trial."""
    states = ["RECRUITING", "ACTIVE_NOT_RECRUITING"]
    before, after = states if i % 2 == 0 else states[::-1]
    return TrialStatusChanged(from_=before, to=after, reason="changed_by_admin", by="webhook-benchmark")


def write_event(stack: Stack, i: int) -> tuple[str, float]:
    """One event in its own transaction: its id and time.time() just after the commit."""
    with stack.db.transaction() as session:
        event_id = add_event(session, status_change(i), trial_id=TRIAL).id
    return event_id, time.time()


def arrivals(receiver: Receiver) -> dict[str, list[float]]:
    """The arrival times of the requests of each webhook-id."""
    seen: dict[str, list[float]] = {}
    for r in list(receiver.received):
        seen.setdefault(r.headers.get("webhook-id", ""), []).append(r.at)
    return seen


def reference_posts(receiver: Receiver, stack: Stack, count: int) -> list[float]:
    """`count` signed POSTs to the receiver through webhooks.send(), as a worker sends one; their ms."""
    secret, times = new_secret(), []
    for i in range(count):
        message_id = f"ref_{i}_{secrets.token_hex(4)}"
        data = status_change(i).model_dump(mode="json")
        body = {
            "id": message_id,
            "type": EVENT_TYPE,
            "occurred_at": time.strftime("%FT%TZ", time.gmtime()),
            "trial_id": TRIAL,
            "data": data,
        }
        response = send(Request(receiver.url, message_id, json.dumps(body).encode(), secret), stack.settings)
        if not response.succeeded:
            raise BenchError(f"reference POST {i} failed: {response.status_code} {response.error}")
        times.append(response.latency_ms)
    return times


def measure(args: argparse.Namespace) -> int:
    header("Accrual webhook delivery latency, event commit -> receiver", "celery", "httpx", "sqlalchemy")
    interval = {"webhook_dispatch_interval_seconds": args.dispatch_interval} if args.dispatch_interval else {}
    with bench_on(args.sqlite, webhook_allow_private=True, **interval) as bench, receiving() as receiver:
        stack = bench.stack
        subscribe(stack, receiver.url, [EVENT_TYPE])
        with bench.phase():
            env = bench.env(webhook_allow_private="true", **interval)
            bench.start("worker", ["worker"], env)
            bench.start("beat", ["beat"], env)
            warm = {write_event(stack, i)[0] for i in range(WARMUP)}
            bench.until(lambda: warm <= arrivals(receiver).keys(), 90, "the warm-up deliveries")
            reference = reference_posts(receiver, stack, 200)
            print(f"   {args.events} events at {args.rate:g}/s", flush=True)
            commits: dict[str, float] = {}
            start = time.perf_counter()
            for i in range(args.events):
                time.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
                event_id, committed = write_event(stack, WARMUP + i)
                commits[event_id] = committed
            bench.until(lambda: commits.keys() <= arrivals(receiver).keys(), 60, "every delivery")
            bench.until(lambda: pending(stack) == 0, 30, "the worker to record every delivery")
            time.sleep(max(1.0, 2 * stack.settings.webhook_dispatch_interval_seconds))  # room for a duplicate
        with stack.db.reading() as session:
            query = select(WebhookDelivery.status, func.count()).where(WebhookDelivery.event_id.in_(commits))
            statuses = Counter(
                {status: n for status, n in session.execute(query.group_by(WebhookDelivery.status))}
            )
    seen = arrivals(receiver)
    latency = [(seen[event_id][0] - committed) * 1000 for event_id, committed in commits.items()]
    duplicated = sum(len(seen[event_id]) > 1 for event_id in commits)
    interval_ms = stack.settings.webhook_dispatch_interval_seconds * 1000
    print(f"   event commit -> receiver: {spread(latency)}")
    print(f"   reference: a signed POST from here, median of {len(reference)}: {median(reference):.2f} ms")
    print(f"   reference: the dispatcher's polling interval, {interval_ms:.0f} ms (half of it on average)")
    print(f"   every event delivered; duplicated {duplicated}; deliveries {dict(statuses)}")
    return 0 if not duplicated and statuses == Counter(succeeded=len(commits)) else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--sqlite", action="store_true", help="the embedded defaults, not PostgreSQL + Redis")
    parser.add_argument("--events", type=int, default=1000, help="measured events (default 1000)")
    parser.add_argument("--rate", type=float, default=5.0, help="events written per second (default 5)")
    parser.add_argument("--dispatch-interval", type=float, help="ACCRUAL_WEBHOOK_DISPATCH_INTERVAL_SECONDS")
    run(parser, measure)
