"""Scenario 15 of RELIABILITY.md §7: a receiver that answers 500, times out or refuses the connection is
retried on the documented schedule, then the delivery is a dead letter, its owner is told, and manual
redelivery sends it again with the same webhook-id, a new webhook-timestamp and a valid signature.

The scenario's `dead` is the contract's `failed` (docs: "end as `failed` after the last attempt, ready
for manual redelivery"): the name is the contract's, the meaning the scenario's. The owner is told by a
`webhook.delivery_failed` event (in the admin's feed) and an e-mail, through a real SMTP server on
loopback, to the address of the token that created the subscription.

Time is simulated (time_machine) so that the schedule's real delays (5 s, 5 min, 30 min) are followed:
every wait is checked against the schedule's jitter bounds, and nothing is due a second before it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from models import Event, Role, WebhookDelivery
from services.notifications.retry import JITTER
from services.notifications.webhooks import claim_due, deliver, lease_for
from services.tokens import create_token
from tests.support.applicants import eligible_applicant
from tests.support.http import auth
from tests.support.mail import Inbox, compose_all, pump_mail
from tests.support.relay import relay
from tests.support.servers import free_port
from tests.support.stack import Stack, database_url_for, make_settings
from tests.support.tokens import TRIAL_SPONSOR
from tests.support.webhook_receiver import Receiver
from tests.support.webhooks import subscribe

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:aiosmtpd")

SCHEDULE = (5.0, 300.0, 1800.0)  # the documented default's first three waits: four attempts in all
TIMEOUT = 1.0
OWNER_MAIL = "integrations@allife.example"
CANARY = "HOOK-CANARY-15"


@pytest.fixture(params=["sqlite", "postgres"])
def hooks(request: pytest.FixtureRequest, tmp_path: Path, smtp_port: int) -> Iterator[Stack]:
    settings = make_settings(
        tmp_path,
        database_url_for(request, tmp_path),
        webhook_allow_private=True,
        webhook_retry_schedule=",".join(str(delay) for delay in SCHEDULE),
        webhook_timeout_seconds=TIMEOUT,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="none",
        smtp_timeout_seconds=2,
        public_url="https://accrual.example.org",
    )
    built = Stack(settings)
    yield built
    built.close()


def owner_token(stack: Stack) -> str:
    """The trial sponsor's token, with the address its webhooks' notices go to."""
    with stack.db.transaction() as session:
        return create_token(session, Role.SPONSOR, sponsor=TRIAL_SPONSOR, email=OWNER_MAIL)


def one_attempt(stack: Stack) -> WebhookDelivery:
    """Claim the one due delivery and send it, as `accrual beat` and a worker would; the row after."""
    with stack.db.transaction() as session:
        [(delivery_id, claim)] = claim_due(session, lease_for(stack.settings))
    deliver(stack.db, delivery_id, claim, stack.settings)
    with stack.db.sessions() as session:
        row = session.get_one(WebhookDelivery, delivery_id)
        row.attempts  # loaded while the session is open  # noqa: B018
        return row


def nothing_due(stack: Stack) -> bool:
    with stack.db.transaction() as session:
        return claim_due(session, lease_for(stack.settings)) == []


def independent_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """HMAC-SHA256 over `id.timestamp.body`, written here without the service's code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def failing_receiver(failure: str, port: int) -> Receiver | None:
    """A receiver on `port` failing the way named; None for a refused connection (nothing listens)."""
    if failure == "refused":
        return None
    if failure == "500":
        return Receiver(port=port, default=500).start()
    return Receiver(port=port, hang=TIMEOUT * 3).start()  # answers long after the sender gave up


@pytest.mark.parametrize("failure", ["500", "timeout", "refused"])
def test_s15_a_failing_receiver_is_retried_on_schedule_then_dead_lettered_owner_told_and_redelivered(
    hooks: Stack, inbox: Inbox, failure: str
) -> None:
    port = free_port()
    owner = owner_token(hooks)
    hook = subscribe(hooks, f"http://127.0.0.1:{port}/hooks/accrual", ["application.submitted"], owner)
    receiver = failing_receiver(failure, port)
    start = datetime.now(UTC)
    try:
        with time_machine.travel(start, tick=True) as clock:
            assert hooks.submit(eligible_applicant(CANARY)).status_code == 202
            relay(hooks)
            delivery = one_attempt(hooks)
            for wait in SCHEDULE:
                last = delivery.attempts[-1]
                assert delivery.status == "pending" and delivery.next_attempt_at is not None
                waited = (delivery.next_attempt_at - last.attempted_at).total_seconds()
                assert wait * (1 - JITTER) <= waited <= wait * (1 + JITTER), (wait, waited)
                clock.move_to(delivery.next_attempt_at - timedelta(seconds=1))
                assert nothing_due(hooks), "an attempt came before its time"
                clock.move_to(delivery.next_attempt_at + timedelta(milliseconds=1))
                delivery = one_attempt(hooks)
                assert delivery.attempts[-1].attempted_at >= delivery.attempts[-2].attempted_at
            assert delivery.status == "failed" and len(delivery.attempts) == 1 + len(SCHEDULE)
            errors = {a.error for a in delivery.attempts}
            codes = {a.status_code for a in delivery.attempts}
            if failure == "500":
                assert codes == {500}
            else:
                assert codes == {None}
                assert errors == {"timed out" if failure == "timeout" else "connection failed"}
            clock.move_to(delivery.next_attempt_at or datetime.now(UTC) + timedelta(days=3))
            assert nothing_due(hooks), "a dead letter is never tried again by itself"
            owner_is_told(hooks, inbox, hook["id"], delivery.id, delivery.event_id)
            if receiver is not None:
                receiver.stop()
            sent_before = len(receiver.received) if receiver is not None else 0
            redelivered = redelivery(hooks, owner, hook, delivery.id, port)
            clock_at_redelivery = int(datetime.now(UTC).timestamp())
    finally:
        if receiver is not None:
            receiver.stop()
    first_timestamps = {r.headers["webhook-timestamp"] for r in (receiver.received if receiver else [])}
    assert sent_before == len(first_timestamps) == (0 if failure == "refused" else 1 + len(SCHEDULE))
    [again] = redelivered.received
    assert again.headers["webhook-id"] == delivery.event_id  # the same id: the receiver's dedupe key
    timestamp = int(again.headers["webhook-timestamp"])
    assert again.headers["webhook-timestamp"] not in first_timestamps  # a new timestamp: this attempt's
    assert start.timestamp() + sum(SCHEDULE) * (1 - JITTER) < timestamp <= clock_at_redelivery
    assert again.headers["webhook-signature"] == independent_signature(
        hook["secret"], again.headers, again.body
    )
    with time_machine.travel(datetime.fromtimestamp(timestamp, UTC), tick=False):  # the receiver's clock
        payload = Webhook(hook["secret"]).verify(again.body, again.headers)
    assert payload["id"] == delivery.event_id and CANARY.encode() not in again.body


def owner_is_told(stack: Stack, inbox: Inbox, webhook_id: str, delivery_id: str, event_id: str) -> None:
    """A webhook.delivery_failed event (the admin's feed shows it, like every event without a trial)
    names the dead letter, and its owner gets an e-mail that holds no clinical data and says how to send
    it again."""
    with stack.db.sessions() as session:
        [notice] = session.scalars(select(Event).where(Event.type == "webhook.delivery_failed")).all()
    assert notice.data["webhook_id"] == webhook_id and notice.data["delivery_id"] == delivery_id
    assert notice.data["event_id"] == event_id and notice.data["attempts"] == 1 + len(SCHEDULE)
    assert compose_all(stack) == 1  # the notice's message; coordinators have no address here
    pump_mail(stack)
    [(recipients, message)] = inbox.messages
    assert recipients == [OWNER_MAIL]
    assert webhook_id in message["Subject"] and event_id in message["Subject"]
    body = message.get_content()
    assert f"/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver" in body
    assert CANARY not in body and CANARY not in message["Subject"]


def redelivery(stack: Stack, owner: str, hook: dict[str, Any], delivery_id: str, port: int) -> Receiver:
    """The owner asks for the dead letter again, with the endpoint now answering; what it received."""
    receiver = Receiver(port=port).start()
    try:
        answer = stack.client.post(
            f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery_id}/redeliver", headers=auth(owner)
        )
        assert answer.status_code == 202 and answer.get_json()["status"] == "pending"
        assert one_attempt(stack).status == "succeeded"
    finally:
        receiver.stop()
    return receiver
