"""The outbox relay killed in the middle of a batch, and two relays at once: every event is published at
least once and handled once (one decision and one count per application, one webhook delivery per
subscription), on SQLite with the embedded broker and on PostgreSQL with Redis."""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import func, select

from models import Event, Role, WebhookDelivery
from models.enums import EventStatus
from services.notifications.webhooks import create_subscription
from services.tokens import Caller
from tests.support.pipeline import assert_decided_exactly_once, decided, submit_many
from tests.support.processes import Processes
from tests.support.reporting import counted_as
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

# The lease is what recovers a dead relay's events here: the sweep is kept out of the way.
RELAY_ENV = {"ACCRUAL_OUTBOX_LEASE_SECONDS": "2", "ACCRUAL_SWEEP_AFTER_SECONDS": "3600"}


def events_by_status(stack: Stack, event_type: str | None = None) -> dict[str, int]:
    query = select(Event.status, func.count()).group_by(Event.status)
    if event_type is not None:
        query = query.where(Event.type == event_type)
    with stack.db.sessions() as session:
        return dict(session.execute(query).all())  # type: ignore[arg-type]


def eligible_counted(stack: Stack) -> int:
    return counted_as(stack, "eligible")


def subscribe_to_submissions(stack: Stack) -> None:
    """An admin's subscription to every submission, to a loopback port nothing listens on."""
    admin = Caller(token_id="relay-faults", role=Role.ADMIN, site_ids=frozenset(), sponsor=None)
    loopback = stack.settings.model_copy(update={"webhook_allow_private": True})
    with stack.db.transaction() as session:
        create_subscription(session, admin, "http://127.0.0.1:9/hooks", ["application.submitted"], loopback)


def deliveries_per_submission(stack: Stack) -> list[int]:
    """How many webhook deliveries each application.submitted event has, or [] while none has one."""
    with stack.db.sessions() as session:
        counts = session.execute(
            select(func.count())
            .select_from(WebhookDelivery)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .where(Event.type == "application.submitted")
            .group_by(WebhookDelivery.event_id)
        )
        return sorted(count for (count,) in counts)


def assert_each_handled_once(stack: Stack, processes: Processes, ids: list[str]) -> None:
    wait_until(
        lambda: decided(stack, ids) and set(events_by_status(stack)) == {EventStatus.PUBLISHED.value},
        timeout=120,
        what="every decision and every event published: " + processes.log("worker")[-1500:],
    )
    assert_decided_exactly_once(stack, ids)
    # Counting is a consumer too: a re-sent event must not count an application twice.
    wait_until(lambda: eligible_counted(stack) == len(ids), timeout=60, what="every application counted")
    assert eligible_counted(stack) == len(ids)
    # So is the webhook fan-out, written as each event is stamped: once per event, however often sent.
    assert deliveries_per_submission(stack) == [1] * len(ids)


def test_a_relay_killed_mid_batch_leaves_no_event_unpublished_and_none_handled_twice(
    backend: Stack, processes: Processes
) -> None:
    environment = {**backend.env(), **RELAY_ENV}
    subscribe_to_submissions(backend)
    ids = submit_many(backend, 60, "MIDBATCH")  # one relay pass: 60 events, 3 screening messages of 20
    processes.start("worker", ["worker"], environment)
    dying = processes.start(
        "dying-relay",
        ["beat"],
        {**environment, "KILL_AFTER_SENDS": "1"},
        module="tests.support.faulty_relay",
    )
    assert dying.wait(60) == -signal.SIGKILL, processes.log("dying-relay")[-1500:]
    # A third of the pass reached the broker, and the relay died before stamping any of it. (The worker
    # may already have decided that third: their new events are pending too.)
    assert events_by_status(backend, "application.submitted") == {EventStatus.PENDING.value: 60}
    assert deliveries_per_submission(backend) == []  # written with the stamp, which never came
    processes.start("relay", ["beat"], environment)
    assert_each_handled_once(backend, processes, ids)


def test_two_relays_at_once_publish_every_event_and_each_is_handled_once(
    backend: Stack, processes: Processes
) -> None:
    environment = {**backend.env(), **RELAY_ENV}
    subscribe_to_submissions(backend)
    ids = submit_many(backend, 60, "TWORELAYS")
    processes.start("worker", ["worker"], environment)
    processes.start("relay-a", ["beat"], environment)
    processes.start("relay-b", ["beat"], environment)
    assert_each_handled_once(backend, processes, ids)
