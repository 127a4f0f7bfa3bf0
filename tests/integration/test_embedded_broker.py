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

import pytest
from kombu import Connection, Exchange, Queue

PROCESSES = 4
ROUNDS = 12


def _declare_and_publish(
    data_dir: str,
    urls: list[str],
    barrier: multiprocessing.synchronize.Barrier,
    errors: multiprocessing.Queue[str],
) -> None:
    """One process of each round: every process meets the others at the barrier, then declares and
    publishes on that round's fresh broker file. The processes start once and race in every round, so
    the rounds cost a barrier each, not a cold start of four interpreters."""
    os.environ["ACCRUAL_DATA_DIR"] = data_dir
    import workers.celery_app  # noqa: F401  installs the process-safe channel, as every Accrual process does

    queue = Queue("screening", Exchange("screening", type="direct"), routing_key="screening")
    for round_number, url in enumerate(urls):
        try:
            with Connection(url) as connection:
                barrier.wait(timeout=180)  # a cold start (bytecode not yet compiled) can take long
                with connection.Producer() as producer:
                    producer.publish(
                        {"n": 1}, exchange=queue.exchange, routing_key="screening", declare=[queue]
                    )
        except Exception as error:  # reported to the parent, which fails the test with it
            errors.put(f"round {round_number}: {type(error).__name__}: {error}")
            barrier.abort()  # the others must not wait for this one
            return


@pytest.mark.slow
def test_processes_starting_together_on_a_fresh_broker_all_declare_and_publish(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    paths = [tmp_path / f"broker-{round_number}.db" for round_number in range(ROUNDS)]
    barrier = context.Barrier(PROCESSES)
    errors: multiprocessing.Queue[str] = context.Queue()
    workers = [
        context.Process(
            target=_declare_and_publish,
            args=(str(tmp_path), [f"sqla+sqlite:///{p}" for p in paths], barrier, errors),
        )
        for _ in range(PROCESSES)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(240)
    reported = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert reported == [] and all(p.exitcode == 0 for p in workers), reported
    for round_number, path in enumerate(paths):
        with closing(sqlite3.connect(path)) as broker:
            assert broker.execute("SELECT count(*) FROM kombu_queue").fetchone() == (1,), round_number
            assert broker.execute("SELECT count(*) FROM kombu_message").fetchone() == (PROCESSES,), (
                round_number
            )


# kombu's SQLAlchemy transport declares its models with a loader option SQLAlchemy 2.1 deprecates.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:sqlalchemy.exc.SADeprecationWarning")
def test_one_channel_used_from_two_threads_loses_nothing_and_raises_nothing(tmp_path: Path) -> None:
    """A worker's consumer loop takes messages while billiard's result thread returns a killed pool
    process's task to the queue, both through the channel's one SQLAlchemy session. Unserialised, their
    commits raised IllegalStateChangeError and stopped the worker."""
    import threading
    from queue import Empty

    import workers.celery_app  # noqa: F401  installs the thread-safe channel

    messages = 400
    with Connection(f"sqla+sqlite:///{tmp_path / 'broker.db'}") as connection:
        channel = connection.default_channel
        channel._new_queue("requeued")
        errors: list[BaseException] = []
        taken = 0

        def put_back() -> None:
            try:
                for n in range(messages):
                    channel._put("requeued", {"body": str(n)})
            except BaseException as error:
                errors.append(error)

        def take() -> None:
            nonlocal taken
            try:
                while taken < messages and not errors:
                    try:
                        channel._get("requeued")
                        taken += 1
                    except Empty:
                        pass
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=put_back), threading.Thread(target=take)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert errors == [] and taken == messages
