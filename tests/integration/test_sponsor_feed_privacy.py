"""Contract v1.1: which criteria decided one applicant's screening are clinical facts about that applicant
(E14, "immunodeficiency", says what they have). The admin's event feed and webhooks carry them; a
sponsor's carry the decision alone. On SQLite and PostgreSQL, over HTTP and through real deliveries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from models import Event, WebhookDelivery
from services.outbox import add_event
from services.screening import screen_application
from services.tokens import Role, create_token
from services.webhooks import claim_due, deliver, lease_for
from tests.conftest import TRIAL, Stack, eligible_applicant, make_settings, wait_until
from tests.webhook_receiver import receiving

SPONSOR = "Allife Medical Science and Technology Co., Ltd."  # NCT06359912's lead sponsor
IMMUNODEFICIENT = {"immunodeficiency": True}  # excluded by E14 alone
LATE = ("application.screened", "application.flagged", "trial.status_changed")


@pytest.fixture(params=["sqlite", "postgres"])
def hooks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack whose webhooks may go to loopback over plain http."""
    url = (
        f"sqlite:///{tmp_path / 'accrual.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    built = Stack(make_settings(tmp_path, url, webhook_allow_private=True, webhook_timeout_seconds=5))
    yield built
    built.close()


def token_for(stack: Stack, role: Role, sponsor: str | None = None) -> str:
    with stack.db.transaction() as session:
        return create_token(session, role, sponsor=sponsor)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def screened_application(stack: Stack, screening_id: str, **observations: Any) -> str:
    """Submit an applicant and screen it here, as a worker would; the application's id."""
    submitted = stack.submit(eligible_applicant(screening_id, **observations))
    assert submitted.status_code == 202, submitted.get_json()
    application_id: str = submitted.get_json()["id"]
    with stack.db.sessions() as session:
        event_id = session.scalar(select(Event.id).where(Event.application_id == application_id))
    assert event_id is not None
    screen_application(stack.db, application_id, event_id, max_deliveries=5)
    return application_id


def feed(stack: Stack, token: str, *types: str) -> list[dict[str, Any]]:
    """The caller's whole feed once it shows an event of each of `types` (PostgreSQL shows an event
    only when every older transaction in the cluster has finished)."""

    def read() -> list[dict[str, Any]] | None:
        response = stack.client.get("/api/v1/events", query_string={"limit": 1000}, headers=auth(token))
        assert response.status_code == 200, response.get_json()
        items: list[dict[str, Any]] = response.get_json()["items"]
        return items if set(types) <= {e["type"] for e in items} else None

    found: list[dict[str, Any]] = wait_until(read, timeout=15, interval=0.05, what=f"{types} in the feed")
    return found


def screened_of(events: list[dict[str, Any]], application_id: str) -> dict[str, Any]:
    [event] = [
        e for e in events if e["type"] == "application.screened" and e.get("application_id") == application_id
    ]
    return event


def test_a_sponsors_feed_carries_the_decision_but_not_the_criteria_that_decided_it(stack: Stack) -> None:
    application = screened_application(stack, "PRIV-1", **IMMUNODEFICIENT)
    sponsor = feed(stack, token_for(stack, Role.SPONSOR, SPONSOR), "application.screened")
    event = screened_of(sponsor, application)
    assert event["data"] == {"decision": "ineligible", "criteria_version": 1}
    assert "E14" not in json.dumps(sponsor)


def test_the_admins_feed_still_names_the_criteria_that_decided(stack: Stack) -> None:
    application = screened_application(stack, "PRIV-2", **IMMUNODEFICIENT)
    event = screened_of(feed(stack, stack.admin, "application.screened"), application)
    assert event["data"] == {"decision": "ineligible", "criteria_version": 1, "criteria": ["E14"]}


def test_a_sponsor_gets_only_the_listed_fields_of_any_application_event(stack: Stack) -> None:
    """An allow-list: what a later event type or field adds stays with the admin until it is listed."""
    application = screened_application(stack, "PRIV-3")
    with stack.db.transaction() as session:
        add_event(
            session,
            "application.flagged",
            trial_id=TRIAL,
            site_id=stack.site_id,
            application_id=application,
            data={"criteria": ["E14"], "note": "immunodeficiency"},
        )
        add_event(
            session, "trial.status_changed", trial_id=TRIAL, data={"from": "RECRUITING", "to": "SUSPENDED"}
        )
    sponsor = feed(stack, token_for(stack, Role.SPONSOR, SPONSOR), *LATE)
    by_type = {e["type"]: e["data"] for e in sponsor}
    assert by_type["application.flagged"] == {}
    assert by_type["trial.status_changed"] == {"from": "RECRUITING", "to": "SUSPENDED"}  # no applicant's
    assert by_type["application.screened"] == {"decision": "eligible", "criteria_version": 1}
    admin = {e["type"]: e["data"] for e in feed(stack, stack.admin, *LATE)}
    assert admin["application.flagged"] == {"criteria": ["E14"], "note": "immunodeficiency"}


def pending(stack: Stack) -> int:
    with stack.db.sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "pending")
        )
    return int(count or 0)


def pump(stack: Stack, timeout: float = 15) -> None:
    """Run the dispatcher's claim and the delivery task here until nothing is pending."""
    deadline = time.monotonic() + timeout
    while pending(stack) and time.monotonic() < deadline:
        with stack.db.transaction() as session:
            due = claim_due(session, lease_for(stack.settings))
        for delivery_id, claim in due:
            deliver(stack.db, delivery_id, claim, stack.settings)
        if not due:
            time.sleep(0.02)
    assert pending(stack) == 0, "deliveries still pending"


def subscribe(stack: Stack, url: str, token: str) -> str:
    response = stack.client.post(
        "/api/v1/webhooks", json={"url": url, "event_types": ["application.screened"]}, headers=auth(token)
    )
    assert response.status_code == 201, response.get_json()
    secret: str = response.get_json()["secret"]
    return secret


def test_a_sponsors_webhook_gets_the_decision_alone_and_an_admins_the_criteria(hooks: Stack) -> None:
    with receiving() as sponsors, receiving() as admins:
        sponsor_secret = subscribe(hooks, sponsors.url, token_for(hooks, Role.SPONSOR, SPONSOR))
        admin_secret = subscribe(hooks, admins.url, hooks.admin)
        application = screened_application(hooks, "PRIV-HOOK", **IMMUNODEFICIENT)
        pump(hooks)
    [to_sponsor] = sponsors.received
    [to_admin] = admins.received
    assert b"E14" not in to_sponsor.body
    sponsor_payload = Webhook(sponsor_secret).verify(to_sponsor.body, to_sponsor.headers)
    assert sponsor_payload["application_id"] == application
    assert sponsor_payload["data"] == {"decision": "ineligible", "criteria_version": 1}
    admin_payload = Webhook(admin_secret).verify(to_admin.body, to_admin.headers)
    assert admin_payload["data"] == {"decision": "ineligible", "criteria_version": 1, "criteria": ["E14"]}
    assert to_sponsor.headers["webhook-id"] == to_admin.headers["webhook-id"] == sponsor_payload["id"]
