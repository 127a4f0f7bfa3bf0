"""Webhook subscriptions over the API, and their deliveries driven in the test's own process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from config import Settings
from models import WebhookDelivery
from services.notifications.webhooks import claim_due, deliver, lease_for
from tests.support.http import auth
from tests.support.relay import relay
from tests.support.stack import Stack, make_settings, sqlite_url


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


def pipeline_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """For a fixture parametrised "sqlite" (embedded broker) / "postgres+redis": webhooks to loopback
    allowed, as the real processes of a pipeline test need."""
    if request.param == "sqlite":
        return make_settings(tmp_path, sqlite_url(tmp_path), webhook_allow_private=True)
    pg_url, redis_url = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")
    return make_settings(tmp_path, pg_url, redis_url, webhook_allow_private=True)
