"""Pipeline throughput: a burst of applications through API, outbox, relay, broker and worker.

    python bench/pipeline.py [--sqlite] [--count 10000] [--steady-count 1000] [--steady-rate 50]
                             [--connections 8]

Issue 7: "10,000 applications submitted as fast as possible, time until the last is decided, with 2 worker
processes on PostgreSQL + Redis; and submission-to-decision latency at a steady 50 applications/s.
Reference: a no-op Celery task and a task doing one SELECT + UPDATE on the same broker and database. Target:
decisions per second at least 60% of the SELECT + UPDATE task's rate; median latency under 100 ms."

On a migrated, seeded stack (a new PostgreSQL database and a redis-server of the benchmark's own; --sqlite:
a SQLite file and the embedded broker), in this order:

1. references, before: --count `bench.noop` tasks, then --count `bench.select_update` tasks (one SELECT and
   one UPDATE of the task's own row in the same database), each published with 50 warm-up tasks while no
   worker runs, then run by a worker of bench/pipeline_tasks.py (Accrual's Celery configuration, the
   options and the 2 pool processes of `accrual worker`); timed from when the warm-up is done to when the
   broker holds none of them (Redis: queued + unacknowledged; SQLite: the visible ones only);
2. `accrual api`, `accrual worker` (2 pool processes) and `accrual beat`; 20 applications as a warm-up;
3. steady: --steady-count applications at --steady-rate per second (open loop, 4 connections); latency from
   just before each POST to its decided_at (one clock), and decided_at - submitted_at;
4. burst: --count applications POSTed as fast as the API takes them over --connections connections while
   the worker and the relay run; decisions per second = count / (the last decided_at - the first POST);
   beside it, intake's rate and the rate of the backlog left when intake ended;
5. checks: every accepted application decided exactly once (tests/support/pipeline.py), every decision
   eligible, every event published;
6. references again, after: the ratio uses the mean of both runs.

Exit status 0 when both targets are met, 1 when one is missed, 2 when a check fails or the set-up does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from sqlalchemy import bindparam, create_engine, func, select, text

from bench.harness import (
    Bench,
    BenchError,
    Posts,
    bench_on,
    header,
    median,
    options,
    post_applications,
    run,
    spread,
    undecided,
    unpublished,
    verdict,
)
from models import Application, Event
from tests.support.pipeline import assert_decided_exactly_once
from tests.support.stack import Stack

ACCRUAL_QUEUES = ("screening", "default", "notifications")
QUEUE, TABLE = "bench_reference", "bench_reference_rows"  # bench/pipeline_tasks.py's, not imported: see
NOOP, SELECT_UPDATE = "bench.noop", "bench.select_update"  # reference_app()
WARMUP, REFERENCE_WARMUP, CONCURRENCY = 20, 50, 2
RATIO_TARGET, MEDIAN_TARGET_MS = 0.6, 100.0


class Broker:
    """How many messages of some queues the broker holds: on Redis, queued and unacknowledged; on the
    embedded broker, the visible ones (kombu's SQLAlchemy transport keeps no record of those delivered
    and not acknowledged, so the at most 2 in flight at the end are not waited for)."""

    def __init__(self, url: str) -> None:
        import redis

        self.redis = redis.Redis.from_url(url) if url.startswith("redis") else None
        self.engine = None if self.redis else create_engine(url.removeprefix("sqla+"))

    def pending(self, queues: tuple[str, ...]) -> int:
        if self.redis is not None:
            return sum(self.redis.llen(queue) for queue in queues) + int(self.redis.hlen("unacked"))
        query = text(
            "SELECT count(*) FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id"
            " WHERE m.visible = 1 AND q.name IN :names"
        ).bindparams(bindparam("names", expanding=True))
        assert self.engine is not None
        try:
            with self.engine.connect() as connection:
                return int(connection.execute(query, {"names": list(queues)}).scalar_one())
        except Exception:  # the transport makes its tables with the first message
            return 0


def reference_app(bench: Bench) -> Any:
    """bench/pipeline_tasks.py's Celery app, to publish its tasks from here: it reads the settings of the
    environment when imported, and this process has none of its own."""
    os.environ.update({k: v for k, v in bench.env().items() if k.startswith("ACCRUAL_")})
    from bench import pipeline_tasks

    return pipeline_tasks.app


def references(bench: Bench, broker: Broker, count: int, when: str) -> dict[str, float]:
    """Tasks per second of each reference task, its worker started once its tasks are all published."""
    app, rates = reference_app(bench), {}
    total, engine = REFERENCE_WARMUP + count, bench.stack.db.engine
    for task in (NOOP, SELECT_UPDATE):
        with engine.begin() as connection:  # a row per task, updated by the SELECT + UPDATE task
            connection.execute(
                text(f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, hits INTEGER)")
            )
            connection.execute(text(f"DELETE FROM {TABLE}"))  # noqa: S608 - a constant
            rows = [{"id": i} for i in range(1, total + 1)]
            connection.execute(text(f"INSERT INTO {TABLE} (id, hits) VALUES (:id, 0)"), rows)  # noqa: S608
        with app.producer_or_acquire() as producer:
            for i in range(1, total + 1):
                app.send_task(task, args=[i], queue=QUEUE, producer=producer)
        with bench.phase():
            flags = ["--queues", QUEUE, "--concurrency", str(CONCURRENCY), "--pool", "prefork"]
            flags += ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
            bench.start(
                f"reference-{task}", ["-A", "bench.pipeline_tasks", "worker", *flags], module="celery"
            )
            first = bench.drain(lambda: broker.pending((QUEUE,)), f"{task}'s warm-up", count, 0.02)
            done = bench.drain(lambda: broker.pending((QUEUE,)), f"{task}'s tasks", 0, 0.02)
        rates[task] = count / (done - first)
        print(f"   {when}: {task} {count} tasks in {done - first:.2f} s, {rates[task]:.1f} per s", flush=True)
        count_hits = text(f"SELECT hits, count(*) FROM {TABLE} GROUP BY hits")  # noqa: S608 - a constant
        with engine.connect() as connection:
            hits: dict[int, int] = dict(connection.execute(count_hits).all())
        if hits != {1 if task == SELECT_UPDATE else 0: total}:
            raise BenchError(f"{task}: rows by number of updates {hits}")
    return rates


@dataclass
class Phase:
    """A run of POSTs and what became of them."""

    posts: Posts
    latency_ms: list[float]  # POST sent -> decided_at
    server_ms: list[float]  # submitted_at -> decided_at
    last_decided: float
    while_posting: int  # decided before the last POST was answered

    @property
    def decisions_per_s(self) -> float:
        return len(self.posts.sent) / (self.last_decided - self.posts.first)

    @property
    def backlog_per_s(self) -> float:
        """Decisions per second after intake ended, of the applications undecided then."""
        return (len(self.posts.sent) - self.while_posting) / max(1e-9, self.last_decided - self.posts.last)


def decided(bench: Bench, prefix: str, posts: Posts) -> Phase:
    """Wait until the applications of `prefix` are decided; their figures."""
    bench.drain(lambda: undecided(bench.stack, prefix), f"decisions of {prefix}*")
    query = select(Application.id, Application.submitted_at, Application.decided_at)
    with bench.stack.db.reading() as session:
        rows = session.execute(query.where(Application.screening_id.startswith(prefix))).all()
    decided_at = {i: d.timestamp() for i, _, d in rows if d}
    server = [(d - s).total_seconds() * 1000 for _, s, d in rows if d]
    latency = [(decided_at[i] - sent) * 1000 for i, sent in posts.sent.items()]
    last = max(decided_at.values())
    return Phase(posts, latency, server, last, sum(t <= posts.last for t in decided_at.values()))


def checks(stack: Stack, phases: list[Phase]) -> list[tuple[str, bool]]:
    ids = [i for phase in phases for i in phase.posts.sent]
    refused = sum(sum(phase.posts.refused.values()) for phase in phases)
    try:
        assert_decided_exactly_once(stack, ids)
        once = True
    except AssertionError:
        once = False
    with stack.db.reading() as session:
        decisions = Counter(
            dict(
                session.execute(
                    select(Application.decision, func.count()).group_by(Application.decision)
                ).all()
            )
        )
        events = Counter(
            dict(session.execute(select(Event.status, func.count()).group_by(Event.status)).all())
        )
    return [
        (f"{len(ids)} POSTs answered 202, {refused} otherwise", refused == 0),
        ("each application decided exactly once: one screening, one application.screened event", once),
        (f"decisions {dict(decisions)}", decisions == Counter(eligible=len(ids))),
        (f"events by status {dict(events)}", set(events) == {"published"}),
    ]


def pipeline(
    bench: Bench, broker: Broker, args: argparse.Namespace
) -> tuple[Phase, Phase | None, list[tuple[str, bool]]]:
    stack = bench.stack
    with bench.phase():
        port = bench.serve("api", ["api"])
        bench.start("worker", ["worker"], bench.env(worker_concurrency=CONCURRENCY))
        bench.start("beat", ["beat"])
        phases = [decided(bench, "W-", post_applications(port, stack, "W", 4, count=WARMUP))]
        print(f"   accrual api, worker and beat; {WARMUP} applications decided as a warm-up", flush=True)
        steady = None
        if args.steady_count:
            print(f"\n== steady: {args.steady_count} applications at {args.steady_rate:g} per s", flush=True)
            posts = post_applications(port, stack, "S", 4, count=args.steady_count, rate=args.steady_rate)
            print(f"   {posts.summary()}; at most {posts.max_lag_ms:.0f} ms behind schedule", flush=True)
            steady = decided(bench, "S-", posts)
            phases.append(steady)
        print(f"\n== burst: {args.count} applications over {args.connections} connections", flush=True)
        posts = post_applications(port, stack, "B", args.connections, count=args.count)
        print(f"   {posts.summary()}", flush=True)
        burst = decided(bench, "B-", posts)
        phases.append(burst)
        bench.drain(lambda: unpublished(stack), "events to publish")
        bench.drain(lambda: broker.pending(ACCRUAL_QUEUES), "Accrual's tasks")
    return burst, steady, checks(stack, phases)


def measure(args: argparse.Namespace) -> int:
    header("Accrual pipeline throughput: API -> outbox -> relay -> broker -> worker -> decision",
           "celery", "kombu", "redis", "sqlalchemy", "psycopg", "gunicorn")  # fmt: skip
    with bench_on(args.sqlite) as bench:
        broker = Broker(bench.stack.settings.broker_url)
        print(f"\n== references: {args.count} tasks each, {CONCURRENCY} pool processes", flush=True)
        before = references(bench, broker, args.count, "before")
        burst, steady, results = pipeline(bench, broker, args)
        print("\n== references again", flush=True)
        after = references(bench, broker, args.count, "after")
    noop, select_update = ((before[t] + after[t]) / 2 for t in (NOOP, SELECT_UPDATE))
    print(f"\nSummary ({bench.description})")
    print(
        f"   reference {NOOP}: {noop:.1f} tasks per s; {SELECT_UPDATE}: {select_update:.1f} (mean of 2 runs)"
    )
    ratio, accepted = burst.decisions_per_s / select_update, len(burst.posts.sent)
    print(
        f"   burst of {accepted}: {burst.decisions_per_s:.1f} decisions per s (first POST -> last decision "
        f"{burst.last_decided - burst.posts.first:.1f} s; intake {accepted / burst.posts.seconds:.1f} per s; "
        f"the backlog left when intake ended decided at {burst.backlog_per_s:.1f} per s)\n"
        f"   burst latency (queueing behind the burst): {spread(burst.latency_ms)}\n"
        f"   ratio to SELECT + UPDATE {ratio:.1%} (target >= {RATIO_TARGET:.0%}) "
        f"{verdict(ratio >= RATIO_TARGET)}; to the no-op {burst.decisions_per_s / noop:.1%}"
    )
    met = ratio >= RATIO_TARGET
    if steady is not None:
        latency = median(steady.latency_ms)
        print(
            f"   steady {args.steady_rate:g} per s, POST sent -> decided_at: {spread(steady.latency_ms)}\n"
            f"   server side, submitted_at -> decided_at: {spread(steady.server_ms)}\n"
            f"   target median < {MEDIAN_TARGET_MS:.0f} ms: {verdict(latency < MEDIAN_TARGET_MS)}"
        )
        met &= latency < MEDIAN_TARGET_MS
    for what, ok in results:
        print(f"   {'ok' if ok else 'FAILED'}: {what}")
    return 2 if not all(ok for _, ok in results) else 0 if met else 1


if __name__ == "__main__":
    parser = options(__doc__)
    parser.add_argument("--sqlite", action="store_true", help="the embedded defaults, not PostgreSQL + Redis")
    parser.add_argument(
        "--count", type=int, default=10000, help="burst size, and reference tasks of each kind"
    )
    parser.add_argument(
        "--steady-count", type=int, default=1000, help="applications at the steady rate (0: none)"
    )
    parser.add_argument("--steady-rate", type=float, default=50.0, help="per second (default 50)")
    parser.add_argument(
        "--connections", type=int, default=8, help="POSTing connections in the burst (default 8)"
    )
    run(parser, measure)
