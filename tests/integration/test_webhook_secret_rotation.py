"""Scenario 18 of RELIABILITY.md §7 (signature conformance and secret rotation), and the webhook half of
scenario 40 (secrets of at least 24 random bytes, shown once, sealed at rest, rotatable), on SQLite and
PostgreSQL against a real receiver on loopback.

Deliveries are checked with the `standardwebhooks` library and with an HMAC-SHA256 over
`id.timestamp.body` written here; during a rotation's overlap the `webhook-signature` header holds two
`v1` entries, the new secret's and the old one's, each verifying with its own key only.
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
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from models import WebhookSubscription
from services.tokens import authenticate
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem, auth
from tests.support.stack import Stack, database_url_for, make_settings
from tests.support.tokens import sponsor_token
from tests.support.webhook_receiver import Received, receiving
from tests.support.webhooks import pump, subscribe

OVERLAP_HOURS = 24


@pytest.fixture(params=["sqlite", "postgres"])
def hooks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    settings = make_settings(
        tmp_path,
        database_url_for(request, tmp_path),
        webhook_allow_private=True,
        webhook_secret_overlap_hours=OVERLAP_HOURS,
    )
    built = Stack(settings)
    yield built
    built.close()


def hmac_entry(secret: str, received: Received) -> str:
    """The `v1` entry for `secret`, computed without the service's code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode()
    digest = hmac.new(key, signed + received.body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verifies(secret: str, received: Received) -> bool:
    """Whether the standardwebhooks library accepts the delivery with `secret`."""
    try:
        Webhook(secret).verify(received.body, received.headers)
    except WebhookVerificationError:
        return False
    return True


def entries(received: Received) -> list[str]:
    return received.headers["webhook-signature"].split(" ")


def delivered(stack: Stack, url_receiver: Any, screening_id: str) -> Received:
    """Submit one applicant and deliver its event; what the receiver got."""
    before = len(url_receiver.received)
    assert stack.submit(eligible_applicant(screening_id)).status_code == 202
    pump(stack)
    [received] = url_receiver.received[before:]
    return received


def rotate(stack: Stack, webhook_id: str, token: str) -> Any:
    return stack.client.post(f"/api/v1/webhooks/{webhook_id}/rotate-secret", headers=auth(token))


def test_s18_deliveries_verify_with_the_library_and_an_independent_hmac_and_both_keys_during_rotation(
    hooks: Stack,
) -> None:
    owner = sponsor_token(hooks)
    with receiving() as receiver:
        hook = subscribe(hooks, receiver.url, ["application.submitted"], owner)
        old = hook["secret"]
        before = delivered(hooks, receiver, "ROT-1")
        assert entries(before) == [hmac_entry(old, before)] and verifies(old, before)

        rotated = rotate(hooks, hook["id"], owner)
        assert rotated.status_code == 200, rotated.get_json()
        new = rotated.get_json()["secret"]
        assert new != old and new.startswith("whsec_")
        until = datetime.fromisoformat(rotated.get_json()["previous_secret_until"])
        assert abs(until - datetime.now(UTC) - timedelta(hours=OVERLAP_HOURS)) < timedelta(minutes=1)

        during = delivered(hooks, receiver, "ROT-2")
        assert entries(during) == [hmac_entry(new, during), hmac_entry(old, during)]
        assert verifies(new, during) and verifies(old, during)
        for secret, entry in ((new, entries(during)[0]), (old, entries(during)[1])):
            alone = Received(during.path, {**during.headers, "webhook-signature": entry}, during.body, 0)
            assert verifies(secret, alone)  # each entry with its own key
            other = old if secret == new else new
            assert not verifies(other, alone)  # and with that key only

        with time_machine.travel(until + timedelta(seconds=1), tick=True):
            after = delivered(hooks, receiver, "ROT-3")
            assert entries(after) == [hmac_entry(new, after)]  # the overlap is over: the new key alone
            assert verifies(new, after) and not verifies(old, after)
            shown = hooks.client.get(f"/api/v1/webhooks/{hook['id']}", headers=auth(owner)).get_json()
            assert shown["previous_secret_until"] is None
    assert len({r.headers["webhook-id"] for r in (before, during, after)}) == 3


def test_s40_a_rotated_secret_is_random_shown_once_sealed_and_audited(hooks: Stack) -> None:
    owner = sponsor_token(hooks)
    hook = subscribe(hooks, "http://127.0.0.1:9/x", ["application.submitted"], owner)
    secrets = [hook["secret"]] + [rotate(hooks, hook["id"], owner).get_json()["secret"] for _ in range(2)]
    assert len(set(secrets)) == 3
    for secret in secrets:
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24  # the specification's minimum
    listed = hooks.client.get("/api/v1/webhooks", headers=auth(owner)).get_data(as_text=True)
    single = hooks.client.get(f"/api/v1/webhooks/{hook['id']}", headers=auth(owner)).get_data(as_text=True)
    deliveries = hooks.client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth(owner))
    shown_again = listed + single + deliveries.get_data(as_text=True)
    assert '"secret"' not in shown_again
    with hooks.db.sessions() as session:
        row = session.scalars(select(WebhookSubscription).where(WebhookSubscription.id == hook["id"])).one()
        stored = f"{row.secret_sealed} {row.previous_secret_sealed}"
    assert row.previous_secret_sealed is not None
    audit = hooks.client.get(
        "/api/v1/audit", query_string={"entity": "webhook", "id": hook["id"]}, headers=auth(hooks.admin)
    ).get_json()["items"]
    rotations = [entry for entry in audit if entry["action"] == "rotate_secret"]
    assert len(rotations) == 2, audit  # one entry per rotation, by its actor, with no secret in it
    assert {entry["actor"] for entry in rotations} == {caller_id(hooks, owner)}
    trail = str(audit)
    for secret in secrets:
        body = secret.removeprefix("whsec_")
        assert body not in stored and body not in shown_again and body not in trail


def caller_id(stack: Stack, token: str) -> str:
    with stack.db.sessions() as session:
        found = authenticate(session, token)
    assert found is not None
    return found.token_id


def test_s18_only_the_owner_or_an_admin_rotates(hooks: Stack) -> None:
    owner = sponsor_token(hooks)
    hook = subscribe(hooks, "http://127.0.0.1:9/x", ["application.submitted"], owner)
    assert_problem(rotate(hooks, hook["id"], sponsor_token(hooks, "Other Pharma")), 404)
    assert_problem(rotate(hooks, hook["id"], hooks.coordinator), 403)
    assert_problem(rotate(hooks, hook["id"], "acr_forged"), 401)
    assert rotate(hooks, hook["id"], hooks.admin).status_code == 200
