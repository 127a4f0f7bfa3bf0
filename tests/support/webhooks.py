"""Webhook subscriptions over the API, and their deliveries driven in the test's own process."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select

from models import WebhookDelivery
from services.notifications.webhooks import claim_due, deliver, lease_for
from tests.support.http import auth
from tests.support.relay import relay
from tests.support.stack import Stack


def subscribe(stack: Stack, url: str, types: list[str], who: str | None = None) -> dict[str, Any]:
    """Subscribe `url` to `types` as `who` (an admin by default); the created webhook, with its secret."""
    response = stack.client.post(
        "/api/v1/webhooks", json={"url": url, "event_types": types}, headers=auth(who or stack.admin)
    )
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def pending(stack: Stack) -> int:
    """How many deliveries are still pending."""
    with stack.db.sessions() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.status == "pending")
            )
            or 0
        )


def pump(stack: Stack, timeout: float = 15) -> None:
    """Relay the outbox, which writes the deliveries its events are owed, then run the dispatcher's
    claim and the delivery task in this process until nothing is pending."""
    relay(stack)
    deadline = time.monotonic() + timeout
    while pending(stack) and time.monotonic() < deadline:
        with stack.db.transaction() as session:
            due = claim_due(session, lease_for(stack.settings))
        for delivery_id, claim in due:
            deliver(stack.db, delivery_id, claim, stack.settings)
        if not due:
            time.sleep(0.02)
    assert pending(stack) == 0, "deliveries still pending"
