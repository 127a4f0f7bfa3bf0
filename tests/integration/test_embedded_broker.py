"""The embedded broker when several processes start on a fresh broker file at the same moment.

`accrual serve` starts the worker and the relay together; both create kombu's tables and queue rows.
kombu guards that with an in-process lock only, and once the worker lost the race and stopped.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from kombu import Connection, Exchange, Queue

PROCESSES = 4
ROUNDS = 12


def _declare_and_publish(
    data_dir: str, url: str, barrier: multiprocessing.synchronize.Barrier, errors: multiprocessing.Queue[str]
) -> None:
    os.environ["ACCRUAL_DATA_DIR"] = data_dir
    import workers.celery_app  # noqa: F401  installs the process-safe channel, as every Accrual process does

    queue = Queue("screening", Exchange("screening", type="direct"), routing_key="screening")
    try:
        with Connection(url) as connection:
            barrier.wait(timeout=180)  # a cold start (bytecode not yet compiled) can take long
            with connection.Producer() as producer:
                producer.publish({"n": 1}, exchange=queue.exchange, routing_key="screening", declare=[queue])
    except Exception as error:  # reported to the parent, which fails the test with it
        errors.put(f"{type(error).__name__}: {error}")


def test_processes_starting_together_on_a_fresh_broker_all_declare_and_publish(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    for round_number in range(ROUNDS):
        url = f"sqla+sqlite:///{tmp_path / f'broker-{round_number}.db'}"
        barrier = context.Barrier(PROCESSES)
        errors: multiprocessing.Queue[str] = context.Queue()
        workers = [
            context.Process(target=_declare_and_publish, args=(str(tmp_path), url, barrier, errors))
            for _ in range(PROCESSES)
        ]
        for process in workers:
            process.start()
        for process in workers:
            process.join(240)
        reported = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
        assert reported == [] and all(p.exitcode == 0 for p in workers), (round_number, reported)
        with closing(sqlite3.connect(tmp_path / f"broker-{round_number}.db")) as broker:
            assert broker.execute("SELECT count(*) FROM kombu_queue").fetchone() == (1,)
            assert broker.execute("SELECT count(*) FROM kombu_message").fetchone() == (PROCESSES,)
