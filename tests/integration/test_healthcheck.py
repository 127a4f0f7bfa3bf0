"""`python -m workers.healthcheck beat`, the beat container's health check: healthy while a scheduler
runs the sweep, unhealthy once its lease says the sweep stopped, or never ran, or the database is away.

The fresh record is written by the beat's own periodic job, so the check and the beat cannot drift
apart on the lease's name or length.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery

from config import Settings
from models import SchedulerLease
from models.base import utcnow
from tests.support.stack import Stack, make_settings
from workers import beat, healthcheck
from workers.healthcheck import SWEEP, check_beat, default_max_age

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 60.0


def run_the_beats_sweep(stack: Stack) -> None:
    """What `accrual beat` does every sweep interval: take the sweep's lease and sweep."""
    app = Celery("healthcheck-test", broker="memory://")  # the sweep publishes nothing here
    jobs = {job.name: job for job in beat.periodic_jobs(stack.db, stack.settings, app)}
    sweep = jobs[SWEEP]
    assert sweep.leased and sweep.interval == stack.settings.sweep_interval_seconds
    sweep.run_if_due(stack.db, "beat-host:1")


def age_the_lease(stack: Stack, by: timedelta) -> None:
    """As if the scheduler that took the lease had stopped `by` ago."""
    with stack.db.transaction() as session:
        lease = session.get(SchedulerLease, SWEEP)
        assert lease is not None
        lease.lease_until -= by


def exit_status(stack: Stack, monkeypatch: pytest.MonkeyPatch, *arguments: str) -> int:
    monkeypatch.setattr(healthcheck, "get_settings", lambda: stack.settings)
    return healthcheck.main(["beat", *arguments])


def test_no_sweep_yet_is_unhealthy(stack: Stack) -> None:
    healthy, line = check_beat(stack.db, stack.settings, LIMIT)
    assert not healthy and "no scheduler" in line


def test_a_sweep_just_run_is_healthy_and_one_older_than_the_limit_is_not(stack: Stack) -> None:
    run_the_beats_sweep(stack)
    healthy, line = check_beat(stack.db, stack.settings, LIMIT)
    assert healthy, line
    # The lease outlives the run by most of an interval; the check counts from the run itself.
    later = utcnow() + timedelta(seconds=LIMIT - 5)
    assert check_beat(stack.db, stack.settings, LIMIT, now=later)[0]
    too_late = utcnow() + timedelta(seconds=LIMIT + 1)
    healthy, line = check_beat(stack.db, stack.settings, LIMIT, now=too_late)
    assert not healthy and "last ran" in line


def test_other_jobs_leases_do_not_count(stack: Stack) -> None:
    """The hourly purge's lease is taken for most of an hour: it would hide a dead scheduler."""
    from workers.leases import acquire

    with stack.db.transaction() as session:
        assert acquire(session, "purge-idempotency", "beat-host:1", timedelta(hours=1))
    assert not check_beat(stack.db, stack.settings, LIMIT)[0]


def test_exit_status_zero_after_a_fresh_sweep_one_when_stale_or_missing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert exit_status(stack, monkeypatch, "--max-age-seconds", "60") == 1  # missing
    run_the_beats_sweep(stack)
    assert exit_status(stack, monkeypatch, "--max-age-seconds", "60") == 0
    age_the_lease(stack, timedelta(minutes=2))
    assert exit_status(stack, monkeypatch, "--max-age-seconds", "60") == 1  # stale


def test_a_limit_under_two_sweep_intervals_is_refused(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_the_beats_sweep(stack)
    limit = 2 * stack.settings.sweep_interval_seconds - 1
    assert exit_status(stack, monkeypatch, "--max-age-seconds", str(limit)) == 1
    assert "ACCRUAL_SWEEP_INTERVAL_SECONDS" in capsys.readouterr().err


def test_the_default_limit_follows_the_sweep_interval(tmp_path: Path) -> None:
    assert default_max_age(Settings(data_dir=tmp_path)) == 60
    assert default_max_age(Settings(data_dir=tmp_path, sweep_interval_seconds=45)) == 180


def test_an_unreachable_database_is_unhealthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    away = make_settings(tmp_path, "postgresql+psycopg://accrual@127.0.0.1:9/accrual")
    monkeypatch.setattr(healthcheck, "get_settings", lambda: away)
    assert healthcheck.main(["beat"]) == 1


def test_a_missing_sqlite_file_is_unhealthy_and_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nothing-here.db"
    monkeypatch.setattr(healthcheck, "get_settings", lambda: make_settings(tmp_path, f"sqlite:///{missing}"))
    assert healthcheck.main(["beat"]) == 1
    assert not missing.exists()


@pytest.mark.slow
def test_the_container_command_reads_its_settings_from_the_environment(stack: Stack) -> None:
    """As docker-compose.yml runs it: a process of its own, configured by ACCRUAL_* variables."""
    command = [sys.executable, "-m", "workers.healthcheck", "beat", "--max-age-seconds", "60"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=60)

    missing = run()
    assert missing.returncode == 1 and "no scheduler" in missing.stderr
    run_the_beats_sweep(stack)
    fresh = run()
    assert fresh.returncode == 0, fresh.stderr
    age_the_lease(stack, timedelta(minutes=10))
    stale = run()
    assert stale.returncode == 1 and "last ran" in stale.stderr
