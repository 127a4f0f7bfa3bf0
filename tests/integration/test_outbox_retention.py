"""Scenario 26 of RELIABILITY.md §7, the outbox under a backlog and over time, on SQLite and PostgreSQL.

- The relay's claim reads a backlog of 100 000 pending events off the (status, next_attempt_at, seq)
  index (ix_events_due), checked with EXPLAIN QUERY PLAN on SQLite and EXPLAIN on PostgreSQL, with the
  backlog all pending and again once most of it is published. The backlog is written by one INSERT ...
  SELECT over a generated series (tests/support/outbox.py: under a second, where a Core executemany of
  as many rows took seven), so the test keeps the scenario's full 100 000. Relaying them all would
  cost 20 to 80 s a back-end, so the test relays a few batches (oldest first); the relay's throughput
  over the full backlog, beside a reference measured in the same run, is bench/outbox_backlog.py's to
  print (tests never time).
- The purge of published events past ACCRUAL_EVENT_RETENTION_DAYS keeps the table bounded round after
  round, deletes nothing still needed (a pending webhook delivery or e-mail, an undecided application's
  screening request, a trial's latest criteria change), runs under its scheduler lease (a second
  scheduler's run is refused while the first holds it), and a purged event's delivery cannot be sent
  again (410 `event-expired`).
- The feed's contract for how far back a cursor reaches: a cursor from before the purge gets 410
  `cursor-expired`; one after it, and a read from the start, get 200 with what is kept.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from models import EmailMessage, Event, EventStatus, Role, Trial, WebhookDelivery, WebhookSubscription
from models.base import utcnow
from models.event import EventRetention
from services.events.catalogue import (
    ApplicationSubmitted,
    EventPayload,
    TrialCriteriaChanged,
    TrialStatusChanged,
)
from services.events.outbox import event_row
from services.events.retention import purged_through
from services.tokens import create_token
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem, auth
from tests.support.outbox import claim_plan, insert_events, reads_the_due_index
from tests.support.relay import in_memory_broker
from tests.support.stack import TRIAL, Stack
from tests.support.waiting import wait_until
from workers.beat import periodic_jobs
from workers.maintenance import purge_expired_events
from workers.relay import relay_once

BACKLOG = 100_000
OTHER_TRIAL = "NCT03239535"
CLOSED = TrialStatusChanged(from_="RECRUITING", to="SUSPENDED", reason="changed_by_admin")


def count_events(stack: Stack) -> int:
    with stack.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Event)) or 0)


def assert_reads_the_due_index(stack: Stack) -> None:
    plan = claim_plan(stack)
    assert reads_the_due_index(stack, plan), plan


@pytest.mark.slow
def test_s26_the_relay_claims_a_backlog_of_100_000_events_off_the_due_index(stack: Stack) -> None:
    insert_events(stack, BACKLOG, ApplicationSubmitted())
    assert_reads_the_due_index(stack)
    with stack.db.sessions() as session:
        oldest = list(session.scalars(select(Event.id).order_by(Event.seq).limit(300)))
    with in_memory_broker(stack) as app:
        handled = [relay_once(stack.db, app, "backlog-relay", 100, 5) for _ in range(3)]
    assert handled == [100, 100, 100]
    with stack.db.sessions() as session:
        published = set(session.scalars(select(Event.id).where(Event.status == EventStatus.PUBLISHED.value)))
    assert published == set(oldest)  # oldest first: each event was due as it was written
    # Most of the backlog published, as a relay that has caught up leaves it: still the index, not a
    # walk past every published row to the few pending ones.
    with stack.db.transaction() as session:
        session.execute(
            update(Event)
            .where(Event.seq <= BACKLOG - 500)
            .values(status=EventStatus.PUBLISHED.value, published_at=utcnow())
        )
    assert_reads_the_due_index(stack)


def long_ago(stack: Stack) -> Any:
    return utcnow() - timedelta(days=stack.settings.event_retention_days + 1)


def age(stack: Stack, *event_ids: str) -> None:
    """Mark these events published, before the retention period."""
    with stack.db.transaction() as session:
        session.execute(
            update(Event)
            .where(Event.id.in_(event_ids))
            .values(status=EventStatus.PUBLISHED.value, published_at=long_ago(stack))
        )


def needed_events(stack: Stack) -> dict[str, str]:
    """Events past retention that something still needs, by why; and one that nothing needs but whose
    finished delivery an admin could ask to send again (`delivered`)."""
    response = stack.submit(eligible_applicant("S-UNDECIDED"))
    assert response.status_code == 202, response.get_json()
    ids = {"undecided": events_of(stack, response.get_json()["id"])}
    for why in ("pending delivery", "pending e-mail", "delivered"):
        ids[why] = written(stack, CLOSED)
    ids["older amendment"] = written(stack, TrialCriteriaChanged(version=2, previous_version=1, by="admin"))
    ids["latest amendment"] = written(stack, TrialCriteriaChanged(version=3, previous_version=2, by="admin"))
    with stack.db.transaction() as session:
        session.add(
            WebhookSubscription(
                id="whk_retention", url="https://hooks.example.org/a", event_types=["trial.status_changed"],
                owner_token_id="tok_admin", secret_sealed="unused: nothing is sent here",
            )
        )  # fmt: skip
        session.flush()
        for why, status in (("pending delivery", "pending"), ("delivered", "succeeded")):
            session.add(
                WebhookDelivery(
                    id=f"dlv_{status}", subscription_id="whk_retention", event_id=ids[why],
                    event_type="trial.status_changed", status=status,
                )
            )  # fmt: skip
        session.add(
            EmailMessage(
                id="eml_pending", event_id=ids["pending e-mail"], to_address="coordinator@example.org",
                subject="s", body="b", status="pending",
            )
        )  # fmt: skip
    age(stack, *ids.values())
    return ids


def events_of(stack: Stack, application_id: str) -> str:
    with stack.db.sessions() as session:
        return str(session.scalars(select(Event.id).where(Event.application_id == application_id)).one())


def written(stack: Stack, payload: EventPayload) -> str:
    with stack.db.transaction() as session:
        row = event_row(payload, trial_id=OTHER_TRIAL, site_id=None, application_id=None)
        session.execute(insert(Event), [row])
    return str(row["id"])


def newest_position(stack: Stack) -> tuple[int, int]:
    """The feed position (txid, seq) of the newest event."""
    with stack.db.sessions() as session:
        row = session.execute(
            select(Event.txid, Event.seq).order_by(Event.txid.desc(), Event.seq.desc()).limit(1)
        ).one()
    return int(row.txid), int(row.seq)


def test_s26_the_purge_keeps_the_outbox_bounded_and_what_is_still_needed(stack: Stack) -> None:
    needed = needed_events(stack)
    recent = CLOSED
    insert_events(stack, 300, recent, status="published", published_at=utcnow())
    kept = count_events(stack) - 2  # all but the finished delivery's event and the older amendment
    for _ in range(4):  # a steady flow: each round's events are past retention by the next purge
        old = CLOSED
        insert_events(stack, 3000, old, status="published", published_at=long_ago(stack))
        newest = newest_position(stack)
        purge_expired_events(stack.db, stack.settings, batch=700)
        assert count_events(stack) == kept
        with stack.db.sessions() as session:
            assert purged_through(session) == newest
    with stack.db.sessions() as session:
        left = set(session.scalars(select(Event.id)))
        purged = session.scalar(select(EventRetention.purged_count))
    gone = {why for why, event_id in needed.items() if event_id not in left}
    assert gone == {"delivered", "older amendment"}
    assert purged == 4 * 3000 + 2
    redelivery = stack.client.post(
        "/api/v1/webhooks/whk_retention/deliveries/dlv_succeeded/redeliver", headers=auth(stack.admin)
    )
    assert assert_problem(redelivery, 410)["type"] == "/problems/event-expired"


def test_s26_the_purge_runs_under_the_schedulers_lease(stack: Stack) -> None:
    with in_memory_broker(stack) as app:
        [first, second] = [
            next(job for job in periodic_jobs(stack.db, stack.settings, app) if job.name == "purge-events")
            for _ in range(2)
        ]
        old = {"status": "published", "published_at": long_ago(stack)}
        insert_events(stack, 500, CLOSED, **old)
        before = count_events(stack)
        first.run_if_due(stack.db, "beat-a")
        assert count_events(stack) == before - 500
        insert_events(stack, 500, CLOSED, **old)
        second.run_if_due(stack.db, "beat-b")  # beat-a's lease runs: beat-b's run is skipped
        assert count_events(stack) == before
        first.next_run = 0.0
        first.run_if_due(stack.db, "beat-a")  # the holder renews its lease and purges
        assert count_events(stack) == before - 500


def feed(stack: Stack, after: str | None = None, limit: int = 100) -> Any:
    query = {"limit": limit, **({"after": after} if after else {})}
    return stack.client.get("/api/v1/events", query_string=query, headers=auth(stack.admin))


def test_s26_a_feed_cursor_from_before_the_purge_gets_410_cursor_expired(stack: Stack) -> None:
    start = feed(stack, limit=1000).get_json()["next_cursor"]  # past the seed's events
    ids = [written(stack, CLOSED) for _ in range(6)]
    # On PostgreSQL an event shows once every older transaction in the cluster has finished.
    wait_until(lambda: listed(feed(stack, start)) == ids, timeout=15, what="the six events in the feed")
    early = feed(stack, start, limit=2).get_json()["next_cursor"]  # after the second event
    late = feed(stack, start, limit=5).get_json()["next_cursor"]  # after the fifth
    age(stack, *ids[:4])
    assert purge_expired_events(stack.db, stack.settings) == 4
    for before_the_purge in (start, early):
        body = assert_problem(feed(stack, before_the_purge), 410)
        assert body["type"] == "/problems/cursor-expired" and "without `after`" in body["detail"]
    assert listed(feed(stack, late)) == ids[5:]
    assert listed(feed(stack, limit=1000))[-2:] == ids[4:]  # from the oldest kept
    assert not set(ids[:4]) & set(listed(feed(stack, limit=1000)))


def listed(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_s26_a_quiet_sponsor_polling_the_feed_is_not_stranded_by_a_purge_of_other_trials(
    stack: Stack,
) -> None:
    """A sponsor whose trials are quiet reads empty pages; its cursor still moves with the whole log,
    so purging other trials' events (which it could never see) does not expire it."""
    with stack.db.transaction() as session:
        sponsor = create_token(session, Role.SPONSOR, sponsor=session.get_one(Trial, TRIAL).sponsor)

    def sponsors_feed(after: str | None) -> Any:
        query = {"limit": 100, **({"after": after} if after else {})}
        return stack.client.get("/api/v1/events", query_string=query, headers=auth(sponsor))

    before = sponsors_feed(None).get_json()["next_cursor"]
    ids = [written(stack, CLOSED) for _ in range(3)]  # another trial's: never the sponsor's to see
    wait_until(lambda: listed(feed(stack, limit=1000))[-3:] == ids, timeout=15, what="the events")
    polled = sponsors_feed(before)
    assert listed(polled) == []
    age(stack, *ids)
    assert purge_expired_events(stack.db, stack.settings) == 3
    assert listed(sponsors_feed(polled.get_json()["next_cursor"])) == []  # 200: it missed nothing
    assert_problem(sponsors_feed(before), 410)  # a cursor from before the purged events still expires
