"""Load: scenarios 24 (sustained load, test-sized) and 25 (burst fairness) of RELIABILITY.md section 7.

Scenario 25 in this design: the relay hands a worker up to ACCRUAL_SCREENING_BATCH_SIZE applications in
one message, so "tasks" are messages, not applications. The test sets the batch size to 1, a message per
application, so the burst is one of many small tasks as the scenario has it. The observable is each
worker's own log: Celery writes `Task ... received` when the worker reserves a message from the broker and
`succeeded`/`retry`/`raised` when its pool process is done with it. Replaying a worker's log gives how many
messages it held at each moment; with prefetch 1 that is never more than its pool processes (so no worker
can hold a second message while another idles), and every worker takes part.

Scenario 24's full size (50 applications/s for 10 minutes, 4 workers) is bench/sustained_load.py; here a
test-sized run over real HTTP on PostgreSQL with Redis.
"""

from __future__ import annotations

import re
from pathlib import Path

import psutil
import pytest

from bench.harness import UNLIMITED, post_applications
from services.reporting.metrics import Figures, broker_figures
from tests.integration.test_worker_heartbeats import heartbeats
from tests.support.pipeline import assert_decided_exactly_once, decided, submit_many
from tests.support.processes import Processes, start_api
from tests.support.servers import free_port
from tests.support.stack import Stack, make_settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
RATE, SECONDS = 10, 20  # 200 applications over real HTTP
MIB = 1024 * 1024
RSS_GROWTH_BOUND = 64 * MIB  # per worker, main and pool processes together
CONTENTION = ("deadlock detected", "DeadlockDetected", "could not serialize", "SerializationFailure")
TASK_LINE = re.compile(r"Task [\w.]+\[([\w.-]+)\] (received|succeeded|retry|raised)")


def most_held(log: str) -> tuple[int, int]:
    """(the most messages the worker held at once, how many it received), replaying its log."""
    held: set[str] = set()
    most = received = 0
    for task_id, what in TASK_LINE.findall(log):
        if what == "received":
            held.add(task_id)
            received += 1
            most = max(most, len(held))
        else:
            held.discard(task_id)
    return most, received


def test_s25_a_burst_on_several_workers_never_has_one_holding_more_than_a_task_per_process(
    backend: Stack, processes: Processes
) -> None:
    environment = {
        **backend.env(),
        "ACCRUAL_SCREENING_BATCH_SIZE": "1",
        "ACCRUAL_WORKER_CONCURRENCY": "1",
        "ACCRUAL_LOG_LEVEL": "INFO",
    }
    workers = ("worker-a", "worker-b")
    for name in workers:
        processes.start(name, ["worker"], environment)
    wait_until(lambda: len(heartbeats(backend)) == len(workers), timeout=60, what="both workers up")
    ids = submit_many(backend, 80, "BURST")
    processes.start("beat", ["beat"], {**environment, "ACCRUAL_LOG_LEVEL": "WARNING"})
    wait_until(lambda: decided(backend, ids), timeout=120, what="every decision")
    assert_decided_exactly_once(backend, ids)
    held = {name: most_held(processes.log(name)) for name in workers}
    assert sum(received for _, received in held.values()) >= len(ids), held
    for name, (most, received) in held.items():
        assert received > 0, f"{name} idled through the burst: {held}"
        assert most == 1, f"{name} held {most} messages at once with one pool process: {held}"


def rss(pid: int) -> int:
    """The resident memory of a process and its children (a worker's main and pool processes)."""
    main = psutil.Process(pid)
    return sum(process.memory_info().rss for process in [main, *main.children(recursive=True)])


def queued(stack: Stack) -> float:
    figures = Figures()
    broker_figures(stack.settings.broker_url, figures)
    return sum(figures.labelled["accrual_queue_depth"][2].values())


def test_s24_sustained_intake_over_http_is_all_decided_with_no_5xx_no_contention_and_steady_workers(
    pg_stack_url: str, redis_url: str, tmp_path: Path, processes: Processes
) -> None:
    stack = Stack(make_settings(tmp_path, pg_stack_url, redis_url))
    try:
        environment = {
            **stack.env(),
            "ACCRUAL_WORKER_CONCURRENCY": "1",
            "ACCRUAL_SCREENING_BATCH_SIZE": "5",  # messages enough for both workers in each half
            "ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN": UNLIMITED,  # one coordinator's token sends it all
            "ACCRUAL_RATE_LIMIT_INTAKE_PER_ADDRESS": UNLIMITED,
        }
        port = free_port()
        start_api(processes, environment, port)
        workers = [processes.start(f"worker-{n}", ["worker"], environment) for n in (1, 2)]
        processes.start("beat", ["beat"], environment)
        # Two halves: the first warms every process up (imports, connections, caches), and the workers'
        # memory after it is the baseline the second half is held to.
        rss_after_each_half = []
        for half in ("FIRST", "SECOND"):
            posts = post_applications(port, stack, half, connections=2, seconds=SECONDS / 2, rate=RATE)
            assert dict(posts.refused) == {}  # every POST answered 202: no 5xx, no 429, no dropped connection
            ids = list(posts.sent)
            assert len(ids) == RATE * SECONDS / 2
            wait_until(lambda: decided(stack, ids), timeout=180, what="every decision")  # noqa: B023
            assert_decided_exactly_once(stack, ids)
            wait_until(lambda: queued(stack) == 0, timeout=60, what="the broker's queues to drain")
            rss_after_each_half.append([rss(worker.pid) for worker in workers])
        before, after = rss_after_each_half
        assert all(a - b < RSS_GROWTH_BOUND for a, b in zip(after, before, strict=True)), (before, after)
        logs = "".join(processes.log(name) for name in ("api", "worker-1", "worker-2", "beat"))
        assert [word for word in CONTENTION if word in logs] == []
        assert re.search(r'" 5\d\d ', processes.log("api")) is None  # the access log: no 5xx at all
    finally:
        stack.close()
