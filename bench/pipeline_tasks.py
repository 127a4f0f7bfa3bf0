"""The reference tasks of bench/pipeline.py, a no-op and one SELECT + one UPDATE. Not part of the product.

Run by bench/pipeline.py, on the settings of the Accrual processes it measures, as `python -m celery -A
bench.pipeline_tasks worker` with the options `accrual worker` gives Celery. The app has Accrual's own
Celery configuration (workers.celery_app.celery_config: acks_late, prefetch multiplier 1, max tasks per
child, the broker's transport options ...) and routes only its two tasks, to the queue `bench_reference`.
`bench.select_update(item)` reads the row `item` of `bench_reference_rows` and writes it back with
`hits + 1` in one transaction, on an engine made as Accrual's are (models.db.make_engine), one per process.
"""

from __future__ import annotations

import os

from celery import Celery
from sqlalchemy import Engine, text

from config import Settings, get_settings
from models.db import make_engine
from workers.celery_app import celery_config

QUEUE = "bench_reference"
TABLE = "bench_reference_rows"
NOOP = "bench.noop"
SELECT_UPDATE = "bench.select_update"

_engines: dict[int, Engine] = {}


def make_app(settings: Settings) -> Celery:
    """A Celery app with Accrual's configuration for `settings`, running only the reference tasks."""
    config = celery_config(settings)
    config.update(include=[], task_routes={}, task_default_queue=QUEUE)
    reference = Celery("accrual-bench-reference")
    reference.conf.update(config)
    reference.task(name=NOOP)(noop)
    reference.task(name=SELECT_UPDATE)(select_update)
    return reference


def noop(item: int) -> None:
    """Nothing: the cost of a task through the broker and the worker alone."""


def select_update(item: int) -> None:
    """One SELECT and one UPDATE of the row `item`, in one transaction."""
    if os.getpid() not in _engines:  # a prefork child must not reuse its parent's connections
        _engines[os.getpid()] = make_engine(get_settings().database_url)
    with _engines[os.getpid()].begin() as connection:
        hits = connection.execute(text(f"SELECT hits FROM {TABLE} WHERE id = :id"), {"id": item}).scalar_one()  # noqa: S608
        update = text(f"UPDATE {TABLE} SET hits = :hits WHERE id = :id")  # noqa: S608 - a constant
        connection.execute(update, {"hits": hits + 1, "id": item})


app = make_app(get_settings())
