"""Scenario 13 of RELIABILITY.md section 7: two schedulers (`accrual beat`) with every periodic job on run
each leased job once per interval between them (no two hold a job's lease at once: no duplicate sweep),
and publish each event once; with both down, the beat's health check says so once the last sweep is two
sweep intervals old. On SQLite with the embedded broker and on PostgreSQL with Redis.

The schedulers run as `tests.support.faulty_relay` (nothing injected), which writes down each lease a job
ran under, with the lease's own start and end as the database holds them, and each event each publish
carried.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models import Event
from tests.support.pipeline import assert_decided_exactly_once, decided, submit_many
from tests.support.processes import Processes
from tests.support.relay_record import leases, overlapping, publishes
from tests.support.stack import Stack
from tests.support.waiting import wait_until
from workers.healthcheck import SWEEP, check_beat, last_sweep

pytestmark = pytest.mark.slow
SWEEP_INTERVAL = 2.0
LEASED_JOBS = (SWEEP, "purge-broker", "count-missed")
SCHEDULE = {
    "ACCRUAL_SWEEP_INTERVAL_SECONDS": str(SWEEP_INTERVAL),
    # The sweep runs every interval but finds nothing to publish again: each event is then published once.
    "ACCRUAL_SWEEP_AFTER_SECONDS": "3600",
    "ACCRUAL_BROKER_PURGE_INTERVAL_SECONDS": "1",
    "ACCRUAL_RECOUNT_INTERVAL_SECONDS": "1",
    "ACCRUAL_LOG_LEVEL": "INFO",
}


def beat_health(environment: dict[str, str]) -> int:
    """The exit status of the beat container's health check, limited to two sweep intervals."""
    command = [
        sys.executable,
        "-m",
        "workers.healthcheck",
        "beat",
        "--max-age-seconds",
        str(2 * SWEEP_INTERVAL),
    ]
    return subprocess.run(command, env=environment, capture_output=True, timeout=60).returncode


def runs(record: Path, job: str) -> int:
    return sum(1 for lease in leases(record) if lease.job == job)


def test_s13_two_beats_run_each_job_once_per_interval_and_a_dead_beat_shows_within_two_intervals(
    backend: Stack, processes: Processes, tmp_path: Path
) -> None:
    record = tmp_path / "record.txt"
    environment = {**backend.env(), **SCHEDULE, "RELAY_RECORD": str(record)}
    ids = submit_many(backend, 20, "TWOBEATS")
    processes.start("worker", ["worker"], environment)
    beats = [
        processes.start(name, ["beat"], environment, "tests.support.faulty_relay") for name in ("a", "b")
    ]
    wait_until(
        lambda: decided(backend, ids) and all(runs(record, job) >= 4 for job in LEASED_JOBS),
        timeout=120,
        what="decisions and four runs of each leased job: " + processes.log("a")[-1000:],
    )
    assert all(beat.poll() is None for beat in beats)
    assert all("relay" in processes.log(name) and "started" in processes.log(name) for name in ("a", "b"))
    assert overlapping(leases(record)) == []  # never two schedulers in one job's interval
    assert_decided_exactly_once(backend, ids)
    with backend.db.sessions() as session:
        submitted = set(session.scalars(select(Event.id).where(Event.type == "application.submitted")))
    assert {event_id: publishes(record)[event_id] for event_id in submitted} == dict.fromkeys(submitted, 1)
    assert beat_health(environment) == 0

    for beat in beats:
        beat.send_signal(signal.SIGKILL)
        beat.wait(10)
    settings = backend.settings.model_copy(update={"sweep_interval_seconds": SWEEP_INTERVAL})
    ran = last_sweep(backend.db, settings)
    assert ran is not None and ran.timestamp() == pytest.approx(
        max(lease.start for lease in leases(record) if lease.job == SWEEP), abs=0.001
    )
    two_intervals = timedelta(seconds=2 * SWEEP_INTERVAL)
    assert check_beat(backend.db, settings, 2 * SWEEP_INTERVAL, now=ran + two_intervals)[0]
    assert not check_beat(
        backend.db, settings, 2 * SWEEP_INTERVAL, now=ran + two_intervals + timedelta(seconds=0.01)
    )[0]
    wait_until(
        lambda: beat_health(environment) == 1, timeout=60, what="the health check to see the beats gone"
    )
