"""The outbox relay killed in the middle of a batch, and several relays at once: every event is published at
least once and handled once (one decision and one count per application, one webhook delivery per
subscription), on SQLite with the embedded broker and on PostgreSQL with Redis.

Scenarios 10 and 11 of RELIABILITY.md section 7. The relays run as `tests.support.faulty_relay`, which
writes down the event ids each broker publish carried, so the tests count publishes per event id.
"""

from __future__ import annotations

import signal
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import Event, Role, WebhookDelivery
from models.enums import EventStatus
from services.notifications.webhooks import create_subscription
from services.tokens import Caller
from tests.support.pipeline import assert_decided_exactly_once, decided, submit_many
from tests.support.processes import Processes
from tests.support.relay_record import publishes
from tests.support.reporting import counted_as
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

# The lease is what recovers a dead relay's events here: the sweep is kept out of the way.
RELAY_ENV = {"ACCRUAL_OUTBOX_LEASE_SECONDS": "2", "ACCRUAL_SWEEP_AFTER_SECONDS": "3600"}
RECORDING = "tests.support.faulty_relay"


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
    try:
        wait_until(
            lambda: decided(stack, ids) and set(events_by_status(stack)) == {EventStatus.PUBLISHED.value},
            timeout=120,
            what="every decision and every event published",
        )
    except AssertionError as timed_out:
        # What the processes said by then, to tell a slow machine from a lost event.
        tails = {name: processes.log(name)[-1500:] for name in ("worker", "relay", "relay-a")}
        raise AssertionError(f"{timed_out}; events {events_by_status(stack)}; logs {tails}") from None
    assert_decided_exactly_once(stack, ids)
    # Counting is a consumer too: a re-sent event must not count an application twice.
    wait_until(lambda: eligible_counted(stack) == len(ids), timeout=60, what="every application counted")
    assert eligible_counted(stack) == len(ids)
    # So is the webhook fan-out, written as each event is stamped: once per event, however often sent.
    assert deliveries_per_submission(stack) == [1] * len(ids)


def submission_events(stack: Stack, ids: list[str]) -> dict[str, str]:
    """Each application's application.submitted event id, by application id."""
    query = select(Event.application_id, Event.id).where(
        Event.application_id.in_(ids), Event.type == "application.submitted"
    )
    with stack.db.sessions() as session:
        return dict(session.execute(query).all())  # type: ignore[arg-type]


def published_out_of_order(stack: Stack, ids: list[str]) -> list[str]:
    """Applications one of whose events was published before an event written earlier for it."""
    with stack.db.sessions() as session:
        rows = session.execute(
            select(Event.application_id, Event.published_at)
            .where(Event.application_id.in_(ids))
            .order_by(Event.application_id, Event.seq)
        ).all()
    latest: dict[str | None, datetime | None] = {}
    out_of_order = []
    for application_id, published_at in rows:
        before = latest.get(application_id)
        if published_at is None or (before is not None and published_at < before):
            out_of_order.append(str(application_id))
        latest[application_id] = published_at
    return out_of_order


def test_s10_a_relay_killed_after_publishing_and_before_stamping_publishes_again_and_each_is_handled_once(
    backend: Stack, processes: Processes, tmp_path: Path
) -> None:
    record = tmp_path / "publishes.txt"
    environment = {**backend.env(), **RELAY_ENV, "RELAY_RECORD": str(record)}
    subscribe_to_submissions(backend)
    ids = submit_many(backend, 60, "MIDBATCH")  # one relay pass: 60 events, 3 screening messages of 20
    events = submission_events(backend, ids)
    processes.start("worker", ["worker"], environment)
    dying = processes.start(
        "dying-relay", ["beat"], {**environment, "KILL_AFTER_SENDS": "1"}, module=RECORDING
    )
    assert dying.wait(60) == -signal.SIGKILL, processes.log("dying-relay")[-1500:]
    # A third of the pass reached the broker, and the relay died before stamping any of it. (The worker
    # may already have decided that third: their new events are pending too.)
    published_before_death = set(publishes(record))
    assert len(published_before_death) == 20 and published_before_death <= set(events.values())
    assert events_by_status(backend, "application.submitted") == {EventStatus.PENDING.value: 60}
    assert deliveries_per_submission(backend) == []  # written with the stamp, which never came
    processes.start("relay", ["beat"], environment, module=RECORDING)
    assert_each_handled_once(backend, processes, ids)
    # The third the dead relay had sent went out twice, the rest once; each was decided once and each
    # event has one webhook delivery, under its one event id.
    sent = publishes(record)
    assert {event_id: sent[event_id] for event_id in events.values()} == {
        event_id: 2 if event_id in published_before_death else 1 for event_id in events.values()
    }


def test_s11_three_relays_at_once_publish_each_event_once_in_order_and_each_is_handled_once(
    backend: Stack, processes: Processes, tmp_path: Path
) -> None:
    record = tmp_path / "publishes.txt"
    # The outbox's own lease (a minute): no relay outlives it here, so nothing is published twice.
    environment = {**backend.env(), "ACCRUAL_SWEEP_AFTER_SECONDS": "3600", "RELAY_RECORD": str(record)}
    subscribe_to_submissions(backend)
    ids = submit_many(backend, 60, "THREERELAYS")
    events = submission_events(backend, ids)
    processes.start("worker", ["worker"], environment)
    for name in ("relay-a", "relay-b", "relay-c"):
        processes.start(name, ["beat"], environment, module=RECORDING)
    assert_each_handled_once(backend, processes, ids)
    sent = publishes(record)
    assert {event_id: sent[event_id] for event_id in events.values()} == dict.fromkeys(events.values(), 1)
    assert published_out_of_order(backend, ids) == []
