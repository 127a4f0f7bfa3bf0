"""Scenario 51 of RELIABILITY.md §7: the backup restore drill of docs/backup.md, on PostgreSQL only.

PostgreSQL only: the drill is `pg_dump` / `pg_restore` (custom format) of the production database; on
the embedded SQLite defaults a backup is a copy of a file, with nothing of the database's own to drill.

A lifecycle runs on the original (applications submitted, decided by the real screening engine,
enrolled; a webhook subscription and its deliveries to a real HTTP receiver). The dump is taken while
the last application's events still wait in the outbox; the original then sends them, so the dump is
a point in time behind what the receiver has seen, as any restore is. The dump is restored into a new
database, with a new data directory given only the keys kept apart from the dump (ACCRUAL_DATA_KEYS,
ACCRUAL_AUDIT_KEYS, ACCRUAL_SECRET_KEY). Then, in the documented restart order: every row of every
table is there as dumped, `accrual db upgrade` finds the schema current, `accrual audit verify`
passes, the copy's audit export equals the original's (scenario 48's export survives the restore),
and a real worker and `accrual beat` started on the copy send the receiver only event ids it had
already seen, and enrol nobody twice.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import func, make_url, select

from models import Application, ApplicationHistory, Base, Event, WebhookDelivery
from models.base import utcnow
from models.db import Database
from tests.support.applications import post
from tests.support.cli import invoke
from tests.support.processes import LOG_COMPLETE_GRACE_SECONDS, Processes
from tests.support.screening import decide
from tests.support.servers import fresh_pg_database, postgres_bindir, unavailable
from tests.support.stack import Stack, make_settings
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import Receiver, receiving
from tests.support.webhooks import pump, subscribe

pytestmark = pytest.mark.slow
HOOKED = ["application.submitted", "application.screened", "application.enrolled"]
EPOCH = "2000-01-01T00:00:00+00:00"


@pytest.fixture
def original(tmp_path: Path, pg_stack_url: str) -> Iterator[Stack]:
    built = Stack(make_settings(tmp_path / "original", pg_stack_url, webhook_allow_private=True))
    yield built
    built.close()


def program(name: str) -> str:
    bindir = postgres_bindir()
    if bindir is None or not (bindir / name).exists():
        unavailable(f"PostgreSQL's {name} (Debian package postgresql-client)")
    return str(bindir / name)


def libpq(url: str) -> str:
    """The SQLAlchemy URL as libpq reads it (pg_dump, pg_restore)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def everything(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with db.sessions() as session:
        return {
            table.name: [
                tuple(row) for row in session.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in Base.metadata.sorted_tables
        }


def lifecycle(stack: Stack) -> list[str]:
    """Three applicants decided by the engine, two enrolled, their events relayed and delivered; then a
    fourth decided and enrolled whose events still wait in the outbox. The enrolled applications."""
    first, second = decide(stack, screening_id="S-RESTORE-1"), decide(stack, screening_id="S-RESTORE-2")
    decide(stack, screening_id="S-RESTORE-3")
    for application_id in (first, second):
        assert post(stack, application_id, "enroll").status_code == 200
    pump(stack)
    last = decide(stack, screening_id="S-RESTORE-4")
    assert post(stack, last, "enroll").status_code == 200
    return [first, second, last]


def on_copy(environment: dict[str, str], *args: str) -> Result:
    return invoke({k: v for k, v in environment.items() if k.startswith("ACCRUAL_")}, *args)


def audit_export(environment: dict[str, str], until: str) -> str:
    made = on_copy(environment, "audit", "export", "--since", EPOCH, "--until", until, "--format", "jsonl")
    assert made.exit_code == 0, made.output
    return made.stdout


def kept_apart(stack: Stack, new_data_dir: Path, database_url: str, broker_url: str) -> dict[str, str]:
    """The environment of processes on the restored copy: a new data directory, and only the keys that
    were kept apart from the dump (on the embedded defaults they sit in the old data directory)."""
    old = stack.settings.data_dir
    return {
        **stack.env(),
        "ACCRUAL_DATA_DIR": str(new_data_dir),
        "ACCRUAL_DATABASE_URL": database_url,
        "ACCRUAL_BROKER_URL": broker_url,
        "ACCRUAL_DATA_KEYS": (old / "data_keys").read_text().strip(),
        "ACCRUAL_AUDIT_KEYS": (old / "audit_keys").read_text().strip(),
        "ACCRUAL_WEBHOOK_ALLOW_PRIVATE": "true",
        "ACCRUAL_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "0.1",
    }


def test_s51_a_restored_dump_holds_everything_verifies_and_resends_only_seen_event_ids(
    original: Stack, tmp_path: Path, processes: Processes, redis_url: str
) -> None:
    pg_dump, pg_restore = program("pg_dump"), program("pg_restore")
    with receiving() as receiver:
        subscribe(original, receiver.url, HOOKED)
        enrolled = lifecycle(original)
        until = utcnow().isoformat()
        original_env = kept_apart(original, original.settings.data_dir, original.settings.database_url, "")
        exported = audit_export(original_env, until)
        dumped = everything(original.db)
        dump = tmp_path / "accrual.dump"
        subprocess.run(
            [pg_dump, "--format=custom", f"--file={dump}", libpq(original.settings.database_url)], check=True
        )
        pump(original)  # after the dump: the fourth application's events reach the receiver
        seen = set(receiver.ids())
        sent_before = len(receiver.received)

        with fresh_pg_database() as copy_url:
            restored = ["--no-owner", "--exit-on-error", f"--dbname={libpq(copy_url)}", str(dump)]
            subprocess.run([pg_restore, *restored], check=True)
            environment = kept_apart(original, tmp_path / "restored-data", copy_url, redis_url)
            copy = Database.for_settings(make_settings(tmp_path / "restored-data", copy_url))
            try:
                assert everything(copy) == dumped
                assert "current" in on_copy(environment, "db", "upgrade").stdout
                verified = on_copy(environment, "audit", "verify")
                assert verified.exit_code == 0, verified.output
                assert audit_export(environment, until) == exported
                restart_and_drain(processes, environment, copy, receiver, sent_before)
                assert_enrolled_once(copy, enrolled)
            finally:
                processes.stop_all(LOG_COMPLETE_GRACE_SECONDS)
                copy.dispose()
    resent = receiver.ids()[sent_before:]
    assert resent and set(resent) <= seen


def restart_and_drain(
    processes: Processes, environment: dict[str, str], copy: Database, receiver: Receiver, sent_before: int
) -> None:
    """Start a worker, then `accrual beat`, on the copy; wait until its outbox and deliveries are done."""
    processes.start("worker", ["worker"], environment)
    processes.start("beat", ["beat"], environment)

    def drained() -> bool:
        with copy.sessions() as session:
            events = session.scalar(select(func.count()).where(Event.status != "published"))
            deliveries = session.scalar(select(func.count()).where(WebhookDelivery.status != "succeeded"))
        return events == 0 and deliveries == 0 and len(receiver.received) > sent_before

    try:
        wait_until(drained, timeout=120, what="the restored pipeline to drain")
    except AssertionError as timed_out:
        logs = {name: processes.log(name)[-1500:] for name in ("worker", "beat")}
        raise AssertionError(f"{timed_out}; {left_over(copy)}; logs: {logs}") from None


def left_over(copy: Database) -> str:
    """What the copy's outbox and deliveries still hold."""
    with copy.sessions() as session:
        events = session.execute(
            select(Event.type, Event.status, Event.last_error).where(Event.status != "published")
        )
        deliveries = session.execute(select(WebhookDelivery.event_type, WebhookDelivery.status))
        return f"events not published: {events.all()}, deliveries: {deliveries.all()}"


def assert_enrolled_once(copy: Database, enrolled: list[str]) -> None:
    with copy.sessions() as session:
        statuses = dict(session.execute(select(Application.id, Application.status)).all())
        enrolments = dict(
            session.execute(
                select(ApplicationHistory.application_id, func.count())
                .where(ApplicationHistory.status == "enrolled")
                .group_by(ApplicationHistory.application_id)
            ).all()
        )
    assert sorted(i for i, status in statuses.items() if status == "enrolled") == sorted(enrolled)
    assert enrolments == dict.fromkeys(enrolled, 1)
