"""Webhook fan-out as a consumer of events, on SQLite and PostgreSQL: the relay writes the deliveries in
the transaction that stamps an event published, once per event and subscription, for subscriptions that
existed when the event occurred and are live when it is relayed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from models import Event, WebhookDelivery, WebhookSubscription
from models.base import utcnow
from services.events.outbox import mark_published, republish_undecided
from tests.support.applicants import eligible_applicant
from tests.support.applications import post
from tests.support.http import auth
from tests.support.relay import in_memory_broker, relay
from tests.support.stack import Stack, database_url_for, make_settings
from tests.support.webhooks import subscribe
from workers import relay as relay_module

NOWHERE = "http://127.0.0.1:9/hooks"  # nothing is delivered here: these tests count delivery rows
SUBMITTED = ["application.submitted"]


class RelayKilled(BaseException):
    """The relay process dying: nothing after it runs, its open transaction is rolled back."""


@pytest.fixture(params=["sqlite", "postgres"])
def hooks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    built = Stack(make_settings(tmp_path, database_url_for(request, tmp_path), webhook_allow_private=True))
    yield built
    built.close()


def owed(stack: Stack) -> list[tuple[str, str]]:
    """(subscription, event) of every delivery written."""
    with stack.db.sessions() as session:
        rows = session.execute(select(WebhookDelivery.subscription_id, WebhookDelivery.event_id))
        return sorted((subscription_id, event_id) for subscription_id, event_id in rows)


def event_of(stack: Stack, application_id: str) -> Event:
    with stack.db.sessions() as session:
        return session.scalars(select(Event).where(Event.application_id == application_id)).one()


def submit(stack: Stack, screening_id: str) -> str:
    response = stack.submit(eligible_applicant(screening_id))
    assert response.status_code == 202, response.get_json()
    application_id: str = response.get_json()["id"]
    return application_id


def test_an_event_relayed_again_after_its_relay_died_before_the_stamp_fans_out_once(
    hooks: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = subscribe(hooks, NOWHERE, SUBMITTED)
    event_id = event_of(hooks, submit(hooks, "DIES")).id
    record = relay_module._record

    def record_then_die(*args: Any) -> None:
        record(*args)  # the deliveries are written, the stamp too, but nothing commits
        raise RelayKilled

    monkeypatch.setattr(relay_module, "_record", record_then_die)
    with in_memory_broker(hooks) as app, pytest.raises(RelayKilled):
        relay_module.relay_once(hooks.db, app, "relay-a", 100, 5, lease=timedelta(minutes=5))
    monkeypatch.undo()
    with hooks.db.sessions() as session:
        event = session.scalars(select(Event).where(Event.id == event_id)).one()
    assert (event.status, event.claimed_by) == ("pending", "relay-a")  # published, never stamped
    assert owed(hooks) == []
    with hooks.db.transaction() as session:  # the dead relay's lease runs out
        session.execute(update(Event).values(lease_until=utcnow() - timedelta(seconds=1)))
    assert relay(hooks) == 1
    assert owed(hooks) == [(hook["id"], event_id)]
    with hooks.db.transaction() as session:
        assert mark_published(session, [event_id], "relay-a") == []  # a late stamp of the dead relay
    assert relay(hooks) == 0
    assert owed(hooks) == [(hook["id"], event_id)]


def test_an_event_the_sweep_publishes_again_is_owed_no_second_delivery(hooks: Stack) -> None:
    hook = subscribe(hooks, NOWHERE, SUBMITTED)
    application = submit(hooks, "SWEPT")
    assert relay(hooks) == 1
    with hooks.db.transaction() as session:  # still undecided: the sweep puts its submission back
        assert republish_undecided(session, utcnow() + timedelta(minutes=1)) == [application]
    assert relay(hooks) == 1
    assert event_of(hooks, application).status == "published"
    assert owed(hooks) == [(hook["id"], event_of(hooks, application).id)]


def test_an_event_whose_tasks_cannot_be_published_still_fans_out_once(hooks: Stack) -> None:
    """Webhook deliveries need no broker: an event that dies in the outbox (its tasks refused for good)
    is still owed them, and the sweep publishing it again later writes none twice."""
    hook = subscribe(hooks, NOWHERE, SUBMITTED)
    application = submit(hooks, "UNSENDABLE")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ValueError("the task's arguments cannot be serialised")

    with in_memory_broker(hooks) as app:
        app.send_task = refuse  # type: ignore[method-assign]
        assert relay_module.relay_once(hooks.db, app, "relay-a", 100, max_attempts=1) == 1
    event = event_of(hooks, application)
    assert event.status == "dead" and "ValueError" in (event.last_error or "")
    assert owed(hooks) == [(hook["id"], event.id)]
    with hooks.db.transaction() as session:  # the sweep puts the dead submission back
        assert republish_undecided(session, utcnow()) == [application]
    assert relay(hooks) == 1
    assert event_of(hooks, application).status == "published"
    assert owed(hooks) == [(hook["id"], event.id)]


def test_a_subscription_created_after_an_event_does_not_receive_it(hooks: Stack) -> None:
    early = subscribe(hooks, NOWHERE, SUBMITTED)
    before = event_of(hooks, submit(hooks, "BEFORE")).id
    late = subscribe(hooks, NOWHERE, SUBMITTED)  # the event waits in the outbox meanwhile
    assert relay(hooks) == 1
    assert owed(hooks) == [(early["id"], before)]
    after = event_of(hooks, submit(hooks, "AFTER")).id
    assert relay(hooks) == 1
    assert owed(hooks) == sorted([(early["id"], before), (early["id"], after), (late["id"], after)])


def test_a_subscription_deleted_or_disabled_before_the_relay_is_owed_nothing(hooks: Stack) -> None:
    deleted = subscribe(hooks, NOWHERE, SUBMITTED)
    disabled = subscribe(hooks, NOWHERE, SUBMITTED)
    live = subscribe(hooks, NOWHERE, ["application.withdrawn", *SUBMITTED])
    event_id = event_of(hooks, submit(hooks, "GONE")).id
    assert (
        hooks.client.delete(f"/api/v1/webhooks/{deleted['id']}", headers=auth(hooks.admin)).status_code == 204
    )
    with hooks.db.transaction() as session:
        session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == disabled["id"])
            .values(disabled_at=utcnow(), disabled_reason="test")
        )
    assert relay(hooks) == 1
    assert owed(hooks) == [(live["id"], event_id)]


def test_one_relay_batch_owes_each_subscription_each_of_its_types_once(hooks: Stack) -> None:
    both = subscribe(hooks, NOWHERE, ["application.submitted", "application.withdrawn"])
    submissions = subscribe(hooks, NOWHERE, SUBMITTED)
    applications = [submit(hooks, f"BATCH-{n}") for n in range(5)]
    withdrawn = post(hooks, applications[0], "withdraw", {"reason": "declined"})
    assert withdrawn.status_code == 200, withdrawn.get_json()
    assert relay(hooks) == 6
    with hooks.db.sessions() as session:
        events = {e.id: e.type for e in session.scalars(select(Event))}
    expected = [(both["id"], e) for e in events] + [
        (submissions["id"], e) for e, kind in events.items() if kind == "application.submitted"
    ]
    assert owed(hooks) == sorted(expected)


def test_the_relays_copy_of_the_subscriptions_goes_stale_at_a_change_and_is_read_again(hooks: Stack) -> None:
    """The relay keeps the live subscriptions per process (services.catalog): a subscription deleted,
    disabled by hand in SQL, or added after the copy was made is seen at the next relay."""
    kept = subscribe(hooks, NOWHERE, SUBMITTED)
    dropped = subscribe(hooks, NOWHERE, SUBMITTED)
    first = event_of(hooks, submit(hooks, "FIRST")).id
    assert relay(hooks) == 1  # the copy is made here, with both
    assert (
        hooks.client.delete(f"/api/v1/webhooks/{dropped['id']}", headers=auth(hooks.admin)).status_code == 204
    )
    with hooks.db.engine.begin() as connection:  # by hand, past the service
        connection.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == kept["id"])
            .values(disabled_at=utcnow())
        )
    added = subscribe(hooks, NOWHERE, SUBMITTED)
    second = event_of(hooks, submit(hooks, "SECOND")).id
    assert relay(hooks) == 1
    assert owed(hooks) == sorted([(kept["id"], first), (dropped["id"], first), (added["id"], second)])
