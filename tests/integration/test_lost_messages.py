"""Messages the broker lost, recovered by the reconciliation sweep: scenarios 6 and 50 of RELIABILITY.md
section 7.

Scenario 6 on PostgreSQL with Redis (a Redis restarted without persistence) is
tests/integration/test_pipeline.py::test_s06_redis_restarted_without_persistence_...; here its SQLite
equivalent: the embedded broker is a SQLite file beside the database, which cannot restart on its own, so
its queue is emptied instead (what FLUSHALL does to Redis). Scenario 7 (the broker down during intake)
has no SQLite equivalent for the same reason, and is tested on PostgreSQL with Redis in test_pipeline.py.
"""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select, update

from models import Application, Event
from models.base import utcnow
from tests.integration.test_metrics import scrape
from tests.support.pipeline import assert_decided_exactly_once, decided, submit_many
from tests.support.processes import Processes
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "alerts.yml"
SWEEP_ENV = {"ACCRUAL_SWEEP_AFTER_SECONDS": "2", "ACCRUAL_SWEEP_INTERVAL_SECONDS": "1"}


def all_published(stack: Stack) -> bool:
    with stack.db.sessions() as session:
        unpublished = session.scalar(
            select(func.count()).select_from(Event).where(Event.status != "published")
        )
    return unpublished == 0


def empty_the_embedded_broker(stack: Stack) -> int:
    """Every message in the embedded broker's queues gone; how many there were."""
    path = stack.settings.broker_url.split(":///", 1)[1]
    with closing(sqlite3.connect(path, timeout=30)) as broker, broker:
        return broker.execute("DELETE FROM kombu_message WHERE visible = 1").rowcount


def test_s06_the_embedded_brokers_queue_emptied_is_published_again_by_the_sweep_and_decided_once(
    sqlite_stack: Stack, processes: Processes
) -> None:
    environment = {**sqlite_stack.env(), **SWEEP_ENV}
    processes.start("beat", ["beat"], environment)  # no worker yet: the tasks wait in the broker
    ids = submit_many(sqlite_stack, 60, "EMPTIED")
    wait_until(lambda: all_published(sqlite_stack), timeout=60, what="the relay to publish")
    # 60 applications, in screening messages of up to 20: at least 3 (more when the relay caught them
    # arriving a few at a time).
    assert empty_the_embedded_broker(sqlite_stack) >= 3
    processes.start("worker", ["worker"], environment)
    wait_until(lambda: decided(sqlite_stack, ids), timeout=90, what="the sweep to recover the lost tasks")
    assert_decided_exactly_once(sqlite_stack, ids)


def overdue_threshold() -> float:
    """The age of the oldest undecided application over which deploy/alerts.yml's alert fires."""
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    [expr] = [rule["expr"] for rule in rules if rule["alert"] == "AccrualDecisionOverdue"]
    match = re.fullmatch(r"max without \(instance\) \(accrual_oldest_undecided_age_seconds\) > (\d+)", expr)
    assert match, expr
    return float(match.group(1))


def lose_the_messages(stack: Stack, ids: list[str], age: timedelta) -> None:
    """As if the relay had published the applications' events `age` ago and the broker had lost them."""
    then = utcnow() - age
    with stack.db.transaction() as session:
        session.execute(update(Event).values(status="published", published_at=then, claimed_by=None))
        session.execute(update(Application).where(Application.id.in_(ids)).values(submitted_at=then))


def test_s50_applications_stuck_past_the_sla_fire_the_alert_and_the_sweep_has_them_decided_once(
    backend: Stack, processes: Processes
) -> None:
    ids = submit_many(backend, 20, "STUCK")
    lose_the_messages(backend, ids, timedelta(hours=1))
    figures = scrape(backend)
    assert figures[("accrual_applications_undecided", ())] == 20
    assert figures[("accrual_oldest_undecided_age_seconds", ())] > overdue_threshold()  # the alert fires
    environment = {**backend.env(), **SWEEP_ENV}
    processes.start("worker", ["worker"], environment)
    processes.start("beat", ["beat"], environment)
    wait_until(lambda: decided(backend, ids), timeout=90, what="the sweep: " + processes.log("beat")[-1500:])
    assert_decided_exactly_once(backend, ids)
    assert "re-published 20 undecided applications" in processes.log("beat")  # the operator's log line
    figures = scrape(backend)
    assert figures[("accrual_applications_undecided", ())] == 0
    assert figures[("accrual_oldest_undecided_age_seconds", ())] <= overdue_threshold()  # and it clears
