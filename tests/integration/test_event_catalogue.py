"""The event catalogue against what the service really writes and serves, on SQLite and PostgreSQL: a
story that writes every declared type through the API and the workers' own functions, each event's
data exactly what its payload model writes, and the feed and webhook bodies as the OpenAPI document
describes them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from sqlalchemy import select

from models import Application, DoseAssignment, Event
from services.events.catalogue import event_types, payload_model
from tests.support.applications import post
from tests.support.criteria import amended
from tests.support.database import set_targets
from tests.support.http import auth
from tests.support.reporting import a_lifecycle
from tests.support.stack import TRIAL, Stack, database_url_for, make_settings
from tests.support.tokens import sponsor_token
from tests.support.webhook_receiver import Receiver, receiving
from tests.support.webhooks import pump, subscribe


@pytest.fixture(params=["sqlite", "postgres"])
def hooks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    url = database_url_for(request, tmp_path)
    settings = make_settings(tmp_path, url, webhook_allow_private=True, webhook_timeout_seconds=2)
    built = Stack(settings)
    yield built
    built.close()


def every_event_type(stack: Stack, receiver: Receiver) -> None:
    """Write each declared type the way the service does, the receiver answering 410 at the end."""
    admin = auth(stack.admin)
    subscribe(stack, receiver.url, list(event_types()))
    eligible, *_ = a_lifecycle(stack)  # application.* (submitted to updated)
    site = {"name": "Shanghai site", "city": "Shanghai", "country": "China"}
    assert stack.client.post(f"/api/v1/trials/{TRIAL}/sites", json=site, headers=admin).status_code == 201
    amendment = stack.client.put(f"/api/v1/trials/{TRIAL}/criteria", json=amended(), headers=admin)
    assert amendment.status_code in (200, 201), amendment.get_json()  # trial.criteria_changed
    set_targets(stack, trial=2, site=None)
    enrolled = post(stack, eligible, "enroll")  # the second: trial.target_reached, its status and sites'
    assert enrolled.status_code == 200, enrolled.get_json()  # and application.allocated: TRIAL randomises
    reason = {"reason": "emergency: the treating physician must know"}
    unblinded = stack.client.post(
        f"/api/v1/applications/{eligible}/unblind", json=reason, headers=auth(stack.admin)
    )
    assert unblinded.status_code == 200, unblinded.get_json()  # allocation.unblinded
    two_dlts_at_the_lowest_level(stack)  # dose_escalation.decided
    pump(stack)  # the receiver's 410 disables the subscription: webhook.disabled


def two_dlts_at_the_lowest_level(stack: Stack) -> None:
    """A 3+3 design on the trial, its two enrolled participants dosed at level 1 with a DLT each (set
    directly: they were enrolled before the design), then the safety review stops the escalation."""
    admin = auth(stack.admin)
    design = {"levels": [{"level": 1, "dose": "1e6 cells"}], "dlt_window_days": 28}
    assert (
        stack.client.put(f"/api/v1/trials/{TRIAL}/dose-escalation", json=design, headers=admin).status_code
        == 200
    )
    with stack.db.transaction() as session:
        enrolled = session.scalars(select(Application.id).where(Application.status == "enrolled")).all()
        for application_id in enrolled[:2]:
            session.add(
                DoseAssignment(
                    application_id=application_id, trial_id=TRIAL, level=1, dosed_on=date.today(), dlt=True
                )
            )
    decision = {"action": "stop", "reason": "two DLTs at the lowest level"}
    stopped = stack.client.post(
        f"/api/v1/trials/{TRIAL}/dose-escalation/decisions", json=decision, headers=admin
    )
    assert stopped.status_code == 200, stopped.get_json()


def stored(stack: Stack) -> list[Event]:
    with stack.db.sessions() as session:
        return list(session.scalars(select(Event).order_by(Event.seq)))


def served_schema(stack: Stack, component: str) -> Any:
    document = stack.client.get("/openapi.json").get_json()
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def test_every_declared_type_is_written_as_its_payload_model_writes_it(hooks: Stack) -> None:
    with receiving(default=410) as receiver:
        every_event_type(hooks, receiver)
    events = stored(hooks)
    assert {e.type for e in events} == set(event_types())
    keeps_key_order = hooks.settings.database_url.startswith("sqlite")  # PostgreSQL's jsonb sorts them
    for event in events:
        payload = payload_model(event.type).model_validate(event.data)
        assert payload.stored() == event.data, event.type
        if keeps_key_order:
            assert list(payload.stored()) == list(event.data), f"{event.type}: the keys in another order"


def test_the_feed_and_webhook_bodies_are_what_the_openapi_document_describes(hooks: Stack) -> None:
    with receiving(default=410) as receiver:
        every_event_type(hooks, receiver)
    page = served_schema(hooks, "EventPage")
    for token in (hooks.admin, sponsor_token(hooks)):
        response = hooks.client.get("/api/v1/events", query_string={"limit": 1000}, headers=auth(token))
        assert response.status_code == 200
        body = response.get_json()
        page.validate(body)
        assert body["items"], "the feed showed nothing"
    [received] = receiver.received
    envelope = served_schema(hooks, "ApplicationSubmittedEvent")
    envelope.validate(json.loads(received.body))


def test_the_document_names_exactly_the_declared_types(hooks: Stack) -> None:
    document = hooks.client.get("/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    assert schemas["NewWebhook"]["properties"]["event_types"]["items"]["enum"] == list(event_types())
    assert schemas["WebhookOut"]["properties"]["event_types"]["items"]["enum"] == list(event_types())
    mapping = schemas["EventPage"]["properties"]["items"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(event_types())
    screened = schemas["ApplicationScreened"]
    assert set(screened["properties"]) == {"decision", "criteria_version", "criteria"}
    assert screened["required"] == ["decision", "criteria_version"]  # `criteria`: admins only
