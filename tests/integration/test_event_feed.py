"""GET /api/v1/events: every visible event exactly once, in a fixed order, whatever the page size,
even while other transactions write events and commit out of seq order."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from models import Event
from services.events.catalogue import TrialStatusChanged
from services.events.outbox import add_event
from services.tokens import Role
from tests.support.applicants import eligible_applicant
from tests.support.applications import post
from tests.support.http import assert_problem
from tests.support.stack import TRIAL, Stack
from tests.support.tokens import token_for
from tests.support.waiting import wait_until

SPONSOR = "allife medical science and technology co., ltd."


def page(stack: Stack, token: str, after: str | None = None, limit: int = 100) -> dict[str, Any]:
    query = {"limit": limit, **({"after": after} if after else {})}
    response = stack.client.get(
        "/api/v1/events", query_string=query, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def read_all(
    stack: Stack, token: str, limit: int, after: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    seen: list[dict[str, Any]] = []
    while True:
        body = page(stack, token, after, limit)
        seen.extend(body["items"])
        if body["next_cursor"] == after or not body["items"]:
            return seen, body["next_cursor"]
        after = body["next_cursor"]


def settled(stack: Stack, token: str, limit: int, after: str | None = None, at_least: int = 1) -> Any:
    """read_all once every event written so far is visible. On PostgreSQL an event shows only when
    every older transaction in the cluster has finished, which another process may hold up briefly."""
    return wait_until(
        lambda: (found := read_all(stack, token, limit, after)) and len(found[0]) >= at_least and found,
        timeout=15,
        interval=0.05,
        what="the feed to show every event written so far",
    )


def written(stack: Stack) -> int:
    with stack.db.sessions() as session:
        return len(list(session.scalars(select(Event.id))))


def some_history(stack: Stack) -> None:
    stack.submit(eligible_applicant("FEED-CANARY-1"))
    second = stack.submit(eligible_applicant("FEED-CANARY-2")).get_json()["id"]
    post(stack, second, "withdraw", {"reason": "moved away"})
    add_event_for_other_trial(stack)


def add_event_for_other_trial(stack: Stack) -> None:
    with stack.db.transaction() as session:
        changed = TrialStatusChanged(from_="RECRUITING", to="SUSPENDED", reason="changed_by_admin")
        add_event(session, changed, trial_id="NCT03239535")


def test_any_page_size_reads_the_same_events_once_in_the_same_order(stack: Stack) -> None:
    some_history(stack)
    admin = token_for(stack, Role.ADMIN)
    whole, _ = settled(stack, admin, 1000, at_least=written(stack))
    with stack.db.sessions() as session:
        assert [e["id"] for e in whole] == list(session.scalars(select(Event.id).order_by(Event.seq)))
    for size in (1, 2, 3, 7):
        assert read_all(stack, admin, size)[0] == whole
    assert len({e["id"] for e in whole}) == len(whole) >= 4


def test_the_envelope_carries_ids_and_statuses_never_observations(stack: Stack) -> None:
    some_history(stack)
    events, _ = settled(stack, token_for(stack, Role.ADMIN), 50, at_least=written(stack))
    submitted = next(e for e in events if e["type"] == "application.submitted")
    assert set(submitted) == {"id", "type", "occurred_at", "trial_id", "site_id", "application_id", "data"}
    assert submitted["occurred_at"].endswith("Z") and submitted["trial_id"] == TRIAL
    text = str(events)
    assert "CANARY" not in text and "hemoglobin" not in text and "birth_date" not in text


def test_a_sponsor_sees_only_its_trials_and_a_coordinator_nothing(stack: Stack) -> None:
    some_history(stack)
    mine, _ = settled(stack, token_for(stack, Role.SPONSOR, SPONSOR.upper()), 100, at_least=3)
    assert mine and {e["trial_id"] for e in mine} == {TRIAL}
    other, _ = read_all(stack, token_for(stack, Role.SPONSOR, "Another Pharma"), 100)
    assert other == []
    denied = stack.client.get("/api/v1/events", headers={"Authorization": f"Bearer {stack.coordinator}"})
    assert_problem(denied, 403)
    assert_problem(stack.client.get("/api/v1/events"), 401)


def test_the_cursor_waits_at_the_end_and_continues_with_what_comes_next(stack: Stack) -> None:
    admin = token_for(stack, Role.ADMIN)
    stack.submit(eligible_applicant("A"))
    first, cursor = settled(stack, admin, 10)
    assert page(stack, admin, cursor)["items"] == [] and page(stack, admin, cursor)["next_cursor"] == cursor
    stack.submit(eligible_applicant("B"))
    later, _ = settled(stack, admin, 10, cursor)
    assert [e["type"] for e in later] == ["application.submitted"]
    assert later[0]["id"] not in {e["id"] for e in first}


@pytest.mark.parametrize("cursor", ["garbage", "x" * 1001, "eyJwIjp7InQiOjAsInMiOjF9LCJzIjoiZXZlbnRzIn0"])
def test_a_forged_or_garbled_cursor_is_refused(stack: Stack, cursor: str) -> None:
    response = stack.client.get(
        "/api/v1/events", query_string={"after": cursor}, headers={"Authorization": f"Bearer {stack.admin}"}
    )
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("limit", [0, -1, 1001, "many"])
def test_limits_outside_one_to_a_thousand_are_refused(stack: Stack, limit: Any) -> None:
    response = stack.client.get(
        "/api/v1/events", query_string={"limit": limit}, headers={"Authorization": f"Bearer {stack.admin}"}
    )
    assert_problem(response, 422, "limit")


def test_a_reader_racing_writers_that_commit_out_of_order_misses_nothing_and_repeats_nothing(
    pg_stack: Stack,
) -> None:
    """Writers take their seq early and commit late, in shuffled order; a reader polls all along."""
    stack = pg_stack
    admin = token_for(stack, Role.ADMIN)
    writers, per_writer = 6, 15
    done = threading.Event()
    read: list[str] = []

    def write(worker: int) -> None:
        rng = random.Random(worker)
        for n in range(per_writer):
            with stack.db.transaction() as session:
                changed = TrialStatusChanged(from_="RECRUITING", to="RECRUITING", reason=f"w{worker}-{n}")
                add_event(session, changed, trial_id=TRIAL)
                session.flush()  # the seq is taken now...
                time.sleep(rng.uniform(0, 0.03))  # ...the commit comes later, after others' commits

    def reader() -> None:
        cursor: str | None = None
        deadline = None
        while True:
            finished = done.is_set()
            body = page(stack, admin, cursor, limit=4)
            read.extend(e["id"] for e in body["items"])
            cursor = body["next_cursor"]
            if finished and not body["items"]:
                # Drained as far as the feed shows; give transactions elsewhere in the cluster a moment
                # to finish, so the last events become visible, then stop.
                deadline = deadline or time.monotonic() + 10
                if len(read) >= writers * per_writer or time.monotonic() > deadline:
                    return
            time.sleep(0.002)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reading = threading.Thread(target=reader)
    reading.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reading.join(60)
    with stack.db.sessions() as session:
        written = list(session.scalars(select(Event.id)))
    assert len(read) == len(set(read)), "an event was read twice"
    assert set(read) == set(written) and len(written) == writers * per_writer, "an event was skipped"
