"""The reference tasks of bench/pipeline.py: a no-op and one SELECT + one UPDATE. Not part of the product.

Started by bench/pipeline.py, with the environment (ACCRUAL_DATABASE_URL, ACCRUAL_BROKER_URL, ...) of the
Accrual processes it measures, as

    python -m celery -A bench.pipeline_tasks worker --queues bench_reference --concurrency 2 \\
        --pool prefork --loglevel WARNING --without-gossip --without-mingle

(the options `accrual worker` gives Celery). The app takes Accrual's own Celery configuration
(workers.celery_app.celery_config: acks_late, prefetch multiplier 1, reject on worker lost, task time
limits, max tasks per child, JSON, no result backend, the broker's transport options) and changes only
what it routes: its two tasks, on the queue `bench_reference`, and none of Accrual's.

- `bench.noop(item)` does nothing: the cost of a task through the broker and the worker alone.
- `bench.select_update(item)` in one transaction reads the row `item` of `bench_reference_rows` and
  writes it back with `hits + 1` and the time, on an engine made as Accrual's are made
  (models.db.make_engine: pool_pre_ping, a connect timeout, hidden parameters; BEGIN IMMEDIATE on
  SQLite), one per pool process, as workers.resources makes Accrual's.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from celery import Celery
from sqlalchemy import Engine, text

from config import Settings, get_settings
from models.db import make_engine
from workers.celery_app import celery_config

QUEUE = "bench_reference"
TABLE = "bench_reference_rows"
NOOP = "bench.noop"
SELECT_UPDATE = "bench.select_update"

_engines: dict[tuple[int, str], Engine] = {}


def make_app(settings: Settings) -> Celery:
    """A Celery app with Accrual's configuration for `settings`, running only the reference tasks."""
    config = celery_config(settings)
    config.update(include=[], task_routes={}, task_default_queue=QUEUE)
    reference = Celery("accrual-bench-reference")
    reference.conf.update(config)
    reference.conf.accrual_settings = settings
    reference.task(name=NOOP)(noop)
    reference.task(name=SELECT_UPDATE)(select_update)
    return reference


def engine_for(url: str) -> Engine:
    """One engine per (process, URL): a prefork child must not reuse its parent's connections."""
    key = (os.getpid(), url)
    if key not in _engines:
        _engines[key] = make_engine(url)
    return _engines[key]


def noop(item: int) -> None:
    """Nothing."""


def select_update(item: int) -> None:
    """One SELECT and one UPDATE of the row `item`, in one transaction."""
    with engine_for(get_settings().database_url).begin() as connection:
        hits = connection.execute(text(f"SELECT hits FROM {TABLE} WHERE id = :id"), {"id": item}).scalar_one()  # noqa: S608
        connection.execute(
            text(f"UPDATE {TABLE} SET hits = :hits, done_at = :now WHERE id = :id"),  # noqa: S608
            {"hits": hits + 1, "now": datetime.now(UTC), "id": item},
        )


app = make_app(get_settings())
