"""The outbox on SQLite and PostgreSQL: claims, leases, ordering per application, retries, the sweep."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from models import Application, Event
from models.base import utcnow
from services.events.catalogue import ApplicationScreened, ApplicationSubmitted, TrialStatusChanged
from services.events.outbox import (
    add_event,
    backoff,
    claim_batch,
    mark_failed,
    mark_published,
    republish_undecided,
)
from tests.support.applicants import eligible_applicant
from tests.support.stack import Stack, make_settings

SUBMITTED = ApplicationSubmitted()


def test_a_claim_takes_only_the_oldest_pending_event_of_each_application(stack: Stack) -> None:
    with stack.db.transaction() as session:
        first = add_event(session, SUBMITTED, trial_id="T", application_id="app_1")
        session.flush()
        screened = ApplicationScreened(decision="eligible", criteria_version=1, criteria=[])
        add_event(session, screened, trial_id="T", application_id="app_1")
        other = add_event(session, SUBMITTED, trial_id="T", application_id="app_2")
        closed = TrialStatusChanged(from_="RECRUITING", to="SUSPENDED", reason="changed_by_admin")
        trial_event = add_event(session, closed, trial_id="T")
    with stack.db.transaction() as session:
        claimed = [e.id for e in claim_batch(session, "relay-a")]
    assert claimed == [first.id, other.id, trial_event.id]


def test_a_leased_event_is_not_claimed_again_until_its_lease_expires(stack: Stack) -> None:
    with stack.db.transaction() as session:
        event = add_event(session, SUBMITTED, trial_id="T", application_id="app_1")
    with stack.db.transaction() as session:
        assert [e.id for e in claim_batch(session, "relay-a")] == [event.id]
    with stack.db.transaction() as session:
        assert claim_batch(session, "relay-b") == []
        session.execute(update(Event).values(lease_until=utcnow() - timedelta(seconds=1)))
    with stack.db.transaction() as session:
        assert [e.id for e in claim_batch(session, "relay-b")] == [event.id]
    with stack.db.transaction() as session:
        assert mark_published(session, [event.id], "relay-a") == []  # the stale relay cannot stamp it
        assert mark_published(session, [event.id], "relay-b") == [event.id]


def test_a_failed_publish_backs_off_and_dies_after_the_last_attempt(stack: Stack) -> None:
    with stack.db.transaction() as session:
        event = add_event(session, SUBMITTED, trial_id="T", application_id="app_1")
    for attempt in range(1, 4):
        with stack.db.transaction() as session:
            session.execute(update(Event).values(next_attempt_at=utcnow()))
            assert [e.id for e in claim_batch(session, "relay")] == [event.id]
        with stack.db.transaction() as session:
            mark_failed(session, event.id, "relay", "OperationalError: refused", max_attempts=3)
        with stack.db.sessions() as session:
            row = session.get_one(Event, event.seq)
        assert row.attempts == attempt and row.last_error == "OperationalError: refused"
    assert row.status == "dead"
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 20)] == [1, 2, 4, 300]


def test_the_sweep_republishes_only_applications_left_undecided(stack: Stack) -> None:
    stuck = stack.submit(eligible_applicant("S-1")).get_json()["id"]
    fresh = stack.submit(eligible_applicant("S-2")).get_json()["id"]
    decided = stack.submit(eligible_applicant("S-3")).get_json()["id"]
    an_hour_ago = utcnow() - timedelta(hours=1)
    with stack.db.transaction() as session:
        session.execute(update(Event).values(status="published", published_at=an_hour_ago))
        session.execute(update(Application).where(Application.id != fresh).values(submitted_at=an_hour_ago))
        session.execute(update(Application).where(Application.id == decided).values(status="eligible"))
    with stack.db.transaction() as session:
        assert republish_undecided(session, utcnow() - timedelta(minutes=5)) == [stuck]
    with stack.db.sessions() as session:
        pending = session.scalars(select(Event.application_id).where(Event.status == "pending")).all()
    assert pending == [stuck]


@pytest.mark.parametrize("relays", [3])
def test_concurrent_relays_on_postgresql_claim_disjoint_batches(
    pg_url: str, tmp_path: object, relays: int
) -> None:
    from threading import Barrier, Thread

    stack = Stack(make_settings(tmp_path, pg_url))  # type: ignore[arg-type]
    try:
        with stack.db.transaction() as session:
            for n in range(60):
                add_event(session, SUBMITTED, trial_id="T", application_id=f"app_{n}")
        claimed: list[list[str]] = [[] for _ in range(relays)]
        barrier = Barrier(relays)

        def relay(index: int) -> None:
            barrier.wait()
            while True:
                with stack.db.transaction() as session:
                    batch = [e.id for e in claim_batch(session, f"relay-{index}", limit=7)]
                if not batch:
                    return
                claimed[index] += batch

        threads = [Thread(target=relay, args=(n,)) for n in range(relays)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        everything = [event_id for batch in claimed for event_id in batch]
        assert len(everything) == len(set(everything)) == 60
    finally:
        stack.close()


def test_an_unreachable_broker_costs_the_events_no_attempt(stack: Stack, tmp_path: Any) -> None:
    from workers.celery_app import make_celery
    from workers.relay import relay_once

    for n in range(3):
        stack.submit(eligible_applicant(f"AWAY-{n}"))
    away = make_celery(make_settings(tmp_path, stack.settings.database_url, "redis://127.0.0.1:9/0"))
    before = utcnow()
    for _ in range(5):  # a long outage: relay after relay finds no broker
        with stack.db.transaction() as session:
            session.execute(update(Event).values(next_attempt_at=utcnow()))
        assert relay_once(stack.db, away, "relay-1", 100, max_attempts=3) == 3
    with stack.db.sessions() as session:
        events = list(session.scalars(select(Event)))
    assert {(e.status, e.attempts) for e in events} == {("pending", 0)}  # none dead, none backed off
    assert all(e.last_error == "the broker was unreachable" and e.lease_until is None for e in events)
    assert all(timedelta(0) < e.next_attempt_at - before <= timedelta(seconds=10) for e in events)
