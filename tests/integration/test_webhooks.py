"""Webhooks end to end against a real HTTP receiver on loopback, on SQLite and PostgreSQL.

Deliveries are driven here by the dispatcher's own functions (claim, then deliver), so the schedule can
be followed step by step; tests/integration/test_webhook_pipeline.py runs them through real processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from threading import Barrier
from typing import Any

import pytest
import time_machine
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook

from models import Event, WebhookDelivery, WebhookSubscription
from models.base import utcnow
from services.notifications import webhooks
from services.notifications.webhooks import claim_due, deliver, lease_for
from services.tokens import Role
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem, auth
from tests.support.relay import relay
from tests.support.servers import free_port
from tests.support.stack import Stack, database_url_for, make_settings
from tests.support.tokens import token_for
from tests.support.webhook_receiver import Receiver, receiving
from tests.support.webhooks import pending, pump, subscribe

SPONSOR = "Allife Medical Science and Technology Co., Ltd."
SCHEDULE = "0.05,0.05,0.05"  # four attempts in all, a few hundred milliseconds


@pytest.fixture(params=["sqlite", "postgres"])
def hooks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack whose webhooks may go to loopback over http, with a short retry schedule."""
    url = database_url_for(request, tmp_path)
    settings = make_settings(
        tmp_path, url, webhook_allow_private=True, webhook_retry_schedule=SCHEDULE, webhook_timeout_seconds=2
    )
    built = Stack(settings)
    yield built
    built.close()


def deliveries(stack: Stack, webhook_id: str, who: str | None = None) -> list[dict[str, Any]]:
    response = stack.client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=auth(who or stack.admin))
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def independent_signature(secret: str, received: Any) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = (
        f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    )
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_a_subscribed_event_arrives_signed_and_is_retried_after_two_500s(hooks: Stack) -> None:
    with receiving(script=[500, 500]) as receiver:
        hook = subscribe(hooks, receiver.url, ["application.submitted"])
        submitted = hooks.submit(eligible_applicant("HOOK-CANARY"))
        assert submitted.status_code == 202
        pump(hooks)
    assert len(receiver.received) == 3 and len(set(receiver.ids())) == 1
    with hooks.db.sessions() as session:
        event = session.scalars(select(Event).where(Event.type == "application.submitted")).one()
    assert receiver.ids()[0] == event.id  # the same webhook-id on every attempt: the receiver's dedupe key
    for received in receiver.received:
        payload = Webhook(hook["secret"]).verify(received.body, received.headers)
        assert payload["id"] == event.id and payload["type"] == "application.submitted"
        assert received.headers["webhook-signature"] == independent_signature(hook["secret"], received)
        assert received.headers["content-type"] == "application/json"
        assert b"CANARY" not in received.body
    [delivery] = deliveries(hooks, hook["id"])
    assert delivery["status"] == "succeeded" and delivery["event_id"] == event.id
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert all(a["latency_ms"] >= 0 for a in delivery["attempts"])


def test_each_subscriber_gets_only_its_types_and_its_trials(hooks: Stack) -> None:
    with receiving() as admins, receiving() as sponsors, receiving() as strangers:
        subscribe(hooks, admins.url, ["application.submitted", "application.withdrawn"])
        subscribe(
            hooks, sponsors.url, ["application.submitted"], token_for(hooks, Role.SPONSOR, SPONSOR.lower())
        )
        subscribe(
            hooks, strangers.url, ["application.submitted"], token_for(hooks, Role.SPONSOR, "Other Pharma")
        )
        application = hooks.submit(eligible_applicant("A")).get_json()["id"]
        hooks.client.post(
            f"/api/v1/applications/{application}/withdraw",
            json={"reason": "x"},
            headers=auth(hooks.coordinator),
        )
        pump(hooks)
    types = [json.loads(r.body)["type"] for r in admins.received]
    assert sorted(types) == ["application.submitted", "application.withdrawn"]
    assert [json.loads(r.body)["type"] for r in sponsors.received] == ["application.submitted"]
    assert strangers.received == []


def test_a_receiver_down_for_the_whole_schedule_fails_then_redelivery_succeeds_with_the_same_id(
    hooks: Stack,
) -> None:
    port = free_port()  # nothing listens here yet: every attempt is refused
    hook = subscribe(hooks, f"http://127.0.0.1:{port}/hooks/accrual", ["application.submitted"])
    hooks.submit(eligible_applicant("A"))
    pump(hooks)
    [failed] = deliveries(hooks, hook["id"])
    assert failed["status"] == "failed" and len(failed["attempts"]) == 4
    assert all(a["status_code"] is None and a["error"] for a in failed["attempts"])
    listed = hooks.client.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries",
        query_string={"status": "failed"},
        headers=auth(hooks.admin),
    )
    assert [d["id"] for d in listed.get_json()["items"]] == [failed["id"]]
    with receiving(port=port) as receiver:
        again = hooks.client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver", headers=auth(hooks.admin)
        )
        assert again.status_code == 202 and again.get_json()["status"] == "pending"
        pump(hooks)
    assert receiver.ids() == [failed["event_id"]]
    Webhook(hook["secret"]).verify(receiver.received[0].body, receiver.received[0].headers)
    [succeeded] = deliveries(hooks, hook["id"])
    assert succeeded["status"] == "succeeded" and len(succeeded["attempts"]) == 5
    twice = hooks.client.post(
        f"/api/v1/webhooks/{hook['id']}/deliveries/{failed['id']}/redeliver", headers=auth(hooks.admin)
    )
    assert twice.status_code == 202  # a succeeded delivery may be sent again on request, too
    pump(hooks)


def test_s16_a_410_disables_the_subscription_with_an_event_and_cancels_what_is_pending(hooks: Stack) -> None:
    with receiving(default=410) as receiver:
        hook = subscribe(hooks, receiver.url, ["application.submitted"])
        hooks.submit(eligible_applicant("A"))
        hooks.submit(eligible_applicant("B"))
        pump(hooks)
    assert len(receiver.received) == 1  # the first 410 stops everything
    states = sorted(d["status"] for d in deliveries(hooks, hook["id"]))
    assert states == ["cancelled", "failed"]
    shown = hooks.client.get(f"/api/v1/webhooks/{hook['id']}", headers=auth(hooks.admin)).get_json()
    assert shown["status"] == "disabled" and "410" in shown["disabled_reason"]
    with hooks.db.sessions() as session:
        disabled = session.scalars(select(Event).where(Event.type == "webhook.disabled")).one()
        dead = session.scalars(select(Event).where(Event.type == "webhook.delivery_failed")).one()
    assert disabled.data["webhook_id"] == hook["id"]
    assert dead.data["webhook_id"] == hook["id"] and dead.data["last_status_code"] == 410
    hooks.submit(eligible_applicant("C"))
    assert relay(hooks) == 3  # C's submission, webhook.disabled and webhook.delivery_failed
    assert pending(hooks) == 0  # a disabled subscription is owed nothing new
    refused = hooks.client.post(
        f"/api/v1/webhooks/{hook['id']}/deliveries/{deliveries(hooks, hook['id'])[0]['id']}/redeliver",
        headers=auth(hooks.admin),
    )
    assert_problem(refused, 409)


@pytest.mark.parametrize("status", [301, 302])
def test_s16_a_redirect_is_a_failure_and_is_not_followed(hooks: Stack, status: int) -> None:
    elsewhere = Receiver().start()
    try:
        with receiving(script=[status], headers={"Location": f"{elsewhere.url}/elsewhere"}) as receiver:
            hook = subscribe(hooks, receiver.url, ["application.submitted"])
            hooks.submit(eligible_applicant("A"))
            pump(hooks)
    finally:
        elsewhere.stop()
    assert [r.path for r in receiver.received] == ["/hooks/accrual", "/hooks/accrual"]
    assert elsewhere.received == []  # the Location was never asked for
    [delivery] = deliveries(hooks, hook["id"])
    assert [a["status_code"] for a in delivery["attempts"]] == [status, 200]


@pytest.mark.parametrize("status", [429, 503])
def test_s16_retry_after_120_means_no_attempt_before_120_s(hooks: Stack, status: int) -> None:
    """The schedule's own wait here is 50 ms; the receiver's Retry-After: 120 lengthens it. The clock is
    simulated: nothing is due 119 s after the refusal, the retry is due after 120 s."""
    with receiving(script=[status], headers={"Retry-After": "120"}) as receiver:
        hook = subscribe(hooks, receiver.url, ["application.submitted"])
        with time_machine.travel(utcnow(), tick=False) as clock:
            hooks.submit(eligible_applicant("A"))
            relay(hooks)
            with hooks.db.transaction() as session:
                [(delivery_id, claim)] = claim_due(session, lease_for(hooks.settings))
            refused_at = utcnow()
            assert deliver(hooks.db, delivery_id, claim, hooks.settings) == "pending"
            with hooks.db.sessions() as session:
                next_at = session.get_one(WebhookDelivery, delivery_id).next_attempt_at
            assert next_at is not None and next_at - refused_at >= timedelta(seconds=120)
            clock.shift(timedelta(seconds=119))
            with hooks.db.transaction() as session:
                assert claim_due(session, lease_for(hooks.settings)) == []
            clock.move_to(next_at)
            with hooks.db.transaction() as session:
                [(_, claim)] = claim_due(session, lease_for(hooks.settings))
            assert deliver(hooks.db, delivery_id, claim, hooks.settings) == "succeeded"
    assert len(receiver.received) == 2
    [delivery] = deliveries(hooks, hook["id"])
    assert [a["status_code"] for a in delivery["attempts"]] == [status, 200]


def claimed_until_its_lease_ran_out(stack: Stack, url: str, screening_id: str) -> tuple[str, str]:
    """One delivery to `url`, claimed by a dispatch whose task has not run before the lease ran out:
    (delivery id, that claim)."""
    subscribe(stack, url, ["application.submitted"])
    stack.submit(eligible_applicant(screening_id))
    relay(stack)
    with stack.db.transaction() as session:
        [(delivery_id, claim)] = claim_due(session, lease_for(stack.settings))
        session.execute(update(WebhookDelivery).values(lease_until=utcnow() - timedelta(seconds=1)))
    return delivery_id, claim


def test_a_stale_claim_sends_nothing(hooks: Stack) -> None:
    with receiving() as receiver:
        delivery_id, stale = claimed_until_its_lease_ran_out(hooks, receiver.url, "A")
        with hooks.db.transaction() as session:
            [(same_id, fresh)] = claim_due(session, lease_for(hooks.settings))  # the lease ran out
        assert same_id == delivery_id and fresh != stale
        assert deliver(hooks.db, delivery_id, stale, hooks.settings) is None
        assert deliver(hooks.db, delivery_id, fresh, hooks.settings) == "succeeded"
        assert deliver(hooks.db, delivery_id, fresh, hooks.settings) is None  # a duplicate task
    assert len(receiver.received) == 1


def test_a_task_that_waited_past_its_lease_is_not_overtaken_while_it_sends(
    hooks: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease runs from the start of the attempt: a dispatcher looking while the late task sends
    finds nothing due, so the receiver is not sent the same delivery twice."""
    claimed_meanwhile: list[list[tuple[str, str]]] = []
    send = webhooks.send

    def send_while_a_dispatcher_looks(request: Any, settings: Any) -> Any:
        with hooks.db.transaction() as session:
            claimed_meanwhile.append(claim_due(session, lease_for(hooks.settings)))
        return send(request, settings)

    with receiving() as receiver:
        # the task waited in a busy queue until its lease had run out
        delivery_id, claim = claimed_until_its_lease_ran_out(hooks, receiver.url, "LATE")
        monkeypatch.setattr(webhooks, "send", send_while_a_dispatcher_looks)
        assert deliver(hooks.db, delivery_id, claim, hooks.settings) == "succeeded"
    assert claimed_meanwhile == [[]]
    assert len(receiver.received) == 1


def test_an_endpoint_failing_for_days_is_disabled(hooks: Stack) -> None:
    with receiving(default=500) as receiver:
        hook = subscribe(hooks, receiver.url, ["application.submitted"])
        hooks.submit(eligible_applicant("A"))
        with hooks.db.transaction() as session:
            five_days_ago = utcnow() - timedelta(days=5, minutes=1)
            session.execute(update(WebhookSubscription).values(failing_since=five_days_ago))
        pump(hooks)
    assert len(receiver.received) == 1
    shown = hooks.client.get(f"/api/v1/webhooks/{hook['id']}", headers=auth(hooks.admin)).get_json()
    assert shown["status"] == "disabled" and "failed since" in shown["disabled_reason"]


def test_deliveries_are_written_as_their_event_is_relayed_and_a_refused_request_writes_none(
    hooks: Stack,
) -> None:
    subscribe(hooks, "http://127.0.0.1:9/never", ["application.submitted"])
    assert hooks.submit({"screening_id": "X"}).status_code == 422
    assert relay(hooks) == 0 and pending(hooks) == 0
    hooks.submit(eligible_applicant("A"))
    assert pending(hooks) == 0  # the request wrote the event; the fan-out is the relay's
    assert relay(hooks) == 1 and pending(hooks) == 1


def test_the_secret_is_shown_once_and_stored_sealed(hooks: Stack) -> None:
    hook = subscribe(hooks, "http://127.0.0.1:9/x", ["trial.status_changed"])
    assert hook["secret"].startswith("whsec_") and len(base64.b64decode(hook["secret"][6:])) == 32
    listed = hooks.client.get("/api/v1/webhooks", headers=auth(hooks.admin)).get_data(as_text=True)
    single = hooks.client.get(f"/api/v1/webhooks/{hook['id']}", headers=auth(hooks.admin)).get_data(
        as_text=True
    )
    assert '"secret"' not in listed + single and hook["secret"] not in listed + single
    with hooks.db.sessions() as session:
        sealed = session.get_one(WebhookSubscription, hook["id"]).secret_sealed
    assert hook["secret"] not in sealed and hook["secret"][6:] not in sealed


def test_subscriptions_belong_to_their_sponsor(hooks: Stack) -> None:
    mine = token_for(hooks, Role.SPONSOR, SPONSOR)
    theirs = token_for(hooks, Role.SPONSOR, "Other Pharma")
    hook = subscribe(hooks, "http://127.0.0.1:9/x", ["application.submitted"], mine)
    assert [
        h["id"] for h in hooks.client.get("/api/v1/webhooks", headers=auth(mine)).get_json()["items"]
    ] == [hook["id"]]
    assert hooks.client.get("/api/v1/webhooks", headers=auth(theirs)).get_json()["items"] == []
    assert_problem(hooks.client.get(f"/api/v1/webhooks/{hook['id']}", headers=auth(theirs)), 404)
    assert_problem(hooks.client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(theirs)), 404)
    assert_problem(hooks.client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth(theirs)), 404)
    assert_problem(hooks.client.get("/api/v1/webhooks", headers=auth(hooks.coordinator)), 403)
    hooks.submit(eligible_applicant("A"))
    relay(hooks)
    assert pending(hooks) == 1
    assert hooks.client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(mine)).status_code == 204
    assert pending(hooks) == 0  # its pending delivery is cancelled
    assert hooks.client.get("/api/v1/webhooks", headers=auth(mine)).get_json()["items"] == []
    assert_problem(hooks.client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(mine)), 404)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "https://10.0.0.1/",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "http://example.com/hook",
        "ftp://example.com/",
        "not a url",
    ],
)
def test_private_plain_or_odd_targets_are_refused_by_default(stack: Stack, url: str) -> None:
    response = stack.client.post(
        "/api/v1/webhooks",
        json={"url": url, "event_types": ["application.submitted"]},
        headers=auth(stack.admin),
    )
    assert_problem(response, 422, "url")
    with stack.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(WebhookSubscription)) == 0


def test_bad_subscriptions_are_refused_naming_the_field(hooks: Stack) -> None:
    for body, field in (
        ({"url": "http://127.0.0.1:9/x", "event_types": []}, "event_types"),
        ({"url": "http://127.0.0.1:9/x", "event_types": ["application.decided"]}, "event_types.0"),
        ({"event_types": ["application.submitted"]}, "url"),
        (
            {"url": "http://127.0.0.1:9/x", "event_types": ["trial.status_changed"], "secret": "mine"},
            "secret",
        ),
    ):
        assert_problem(
            hooks.client.post("/api/v1/webhooks", json=body, headers=auth(hooks.admin)), 422, field
        )


def test_two_dispatchers_claim_disjoint_deliveries(pg_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, pg_url, webhook_allow_private=True)
    stack = Stack(settings)
    try:
        subscribe(stack, "http://127.0.0.1:9/x", ["application.submitted"])
        for n in range(40):
            stack.submit(eligible_applicant(f"D{n}"))
        assert relay(stack) == 40
        barrier = Barrier(2)
        claimed: list[list[str]] = [[], []]

        def dispatcher(index: int) -> None:
            with stack.db.transaction() as session:
                barrier.wait()
                claimed[index] = [d for d, _ in claim_due(session, lease_for(settings), limit=25)]
                time.sleep(0.2)  # hold the row locks while the other dispatcher claims

        import threading

        threads = [threading.Thread(target=dispatcher, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not set(claimed[0]) & set(claimed[1])
        assert len(claimed[0]) + len(claimed[1]) == 40
    finally:
        stack.close()


def test_receiver_holds_the_signature_of_every_attempt_fresh(hooks: Stack) -> None:
    receiver = Receiver(script=[500]).start()
    try:
        hook = subscribe(hooks, receiver.url, ["application.submitted"])
        hooks.submit(eligible_applicant("A"))
        pump(hooks)
    finally:
        receiver.stop()
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])
    for received in receiver.received:
        Webhook(hook["secret"]).verify(received.body, received.headers)
