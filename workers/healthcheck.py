"""Health checks for containers: `python -m workers.healthcheck beat [--max-age-seconds N]`.

`accrual beat` writes nothing of its own on a timer, but it takes the sweep's scheduler lease each time
it runs the sweep (every ACCRUAL_SWEEP_INTERVAL_SECONDS, workers.beat), for a share of that interval
(workers.leases.lease_for). So the lease tells when a scheduler last ran the sweep: its end less its
length. Exit status 0 when that is recent, 1 when it is older than the limit, missing, or the database
cannot be read (what a container's HEALTHCHECK expects); one line says which.

The lease belongs to whichever scheduler runs the sweep: with several `accrual beat` processes, this
tells whether the schedule runs at all, not whether this process takes part in it.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url

from config import Settings, get_settings
from models import SchedulerLease
from models.base import utcnow
from models.db import Database
from workers.leases import lease_for

# The beat's periodic job whose lease is read (workers.beat.periodic_jobs names it).
SWEEP = "sweep-undecided"
# Without --max-age-seconds: this many sweep intervals, and never less than a minute.
DEFAULT_INTERVALS = 4
DEFAULT_FLOOR_SECONDS = 60.0


def last_sweep(db: Database, settings: Settings) -> datetime | None:
    """When a scheduler last took the sweep's lease, or None if none ever has."""
    with db.reading() as session:
        lease_until = session.scalar(select(SchedulerLease.lease_until).where(SchedulerLease.name == SWEEP))
    if lease_until is None:
        return None
    return lease_until - lease_for(settings.sweep_interval_seconds)


def check_beat(
    db: Database, settings: Settings, max_age_seconds: float, now: datetime | None = None
) -> tuple[bool, str]:
    """Whether a scheduler ran the sweep within `max_age_seconds`, and a line saying so."""
    ran = last_sweep(db, settings)
    if ran is None:
        return False, f"no scheduler has run {SWEEP} yet"
    age = ((now or utcnow()) - ran).total_seconds()
    if age > max_age_seconds:
        return False, f"{SWEEP} last ran {age:.0f} s ago (limit {max_age_seconds:g} s)"
    return True, f"{SWEEP} ran {max(age, 0):.0f} s ago"


def default_max_age(settings: Settings) -> float:
    return max(DEFAULT_FLOOR_SECONDS, DEFAULT_INTERVALS * settings.sweep_interval_seconds)


def _missing_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database file that does not exist: connecting would create it empty."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return None if Path(parsed.database).exists() else parsed.database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.healthcheck", description="Health checks for Accrual's containers."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    beat = commands.add_parser("beat", help="exit 1 unless a scheduler (accrual beat) ran its sweep lately")
    beat.add_argument(
        "--max-age-seconds",
        type=float,
        help=f"how old the last sweep may be (default: {DEFAULT_INTERVALS} sweep intervals, at least "
        f"{DEFAULT_FLOOR_SECONDS:g} s); at least twice ACCRUAL_SWEEP_INTERVAL_SECONDS",
    )
    arguments = parser.parse_args(argv)
    settings = get_settings()
    max_age = default_max_age(settings) if arguments.max_age_seconds is None else arguments.max_age_seconds
    if max_age < 2 * settings.sweep_interval_seconds:
        # The sweep runs once per interval: a shorter limit would call a healthy scheduler dead.
        print(
            f"unhealthy: --max-age-seconds {max_age:g} is under twice ACCRUAL_SWEEP_INTERVAL_SECONDS "
            f"({settings.sweep_interval_seconds:g})",
            file=sys.stderr,
        )
        return 1
    if (path := _missing_sqlite_file(settings.database_url)) is not None:
        print(f"unhealthy: no database at {path}", file=sys.stderr)
        return 1
    # Only the leases are read: no data keys needed, and none generated into the data directory.
    db = Database(settings.database_url)
    try:
        healthy, line = check_beat(db, settings, max_age)
    except Exception as exc:  # the database away or not migrated: unhealthy, with the reason
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        healthy, line = False, f"cannot read the scheduler's leases: {type(exc).__name__}: {reason}"
    finally:
        db.dispose()
    print(f"{'healthy' if healthy else 'unhealthy'}: {line}", file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
