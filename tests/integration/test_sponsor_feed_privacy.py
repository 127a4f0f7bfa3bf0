"""Contract v1.1: which criteria decided one applicant's screening are clinical facts about that applicant
(E14, "immunodeficiency", says what they have). The admin's event feed and webhooks carry them; a
sponsor's carry the decision alone. On SQLite and PostgreSQL, over HTTP and through real deliveries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from models import Event
from models.base import utcnow
from services.events.catalogue import TrialStatusChanged
from services.events.outbox import add_event
from services.ids import new_id
from services.tokens import Role
from tests.support.http import auth
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack, database_url_for, make_settings
from tests.support.tokens import token_for
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import receiving
from tests.support.webhooks import pump, subscribe

SPONSOR = "Allife Medical Science and Technology Co., Ltd."  # NCT06359912's lead sponsor
IMMUNODEFICIENT = {"immunodeficiency": True}  # excluded by E14 alone
LATE = ("application.screened", "application.flagged", "trial.status_changed")
SCREENED = ["application.screened"]


@pytest.fixture(params=["sqlite", "postgres"])
def hooks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack whose webhooks may go to loopback over plain http."""
    url = database_url_for(request, tmp_path)
    built = Stack(make_settings(tmp_path, url, webhook_allow_private=True, webhook_timeout_seconds=5))
    yield built
    built.close()


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
    application = decide(stack, screening_id="PRIV-1", **IMMUNODEFICIENT)
    sponsor = feed(stack, token_for(stack, Role.SPONSOR, SPONSOR), "application.screened")
    event = screened_of(sponsor, application)
    assert event["data"] == {"decision": "ineligible", "criteria_version": 1}
    assert "E14" not in json.dumps(sponsor)


def test_the_admins_feed_still_names_the_criteria_that_decided(stack: Stack) -> None:
    application = decide(stack, screening_id="PRIV-2", **IMMUNODEFICIENT)
    event = screened_of(feed(stack, stack.admin, "application.screened"), application)
    assert event["data"] == {"decision": "ineligible", "criteria_version": 1, "criteria": ["E14"]}


def test_a_sponsor_gets_only_the_listed_fields_of_any_application_event(stack: Stack) -> None:
    """An allow-list: what a later event type or field adds stays with the admin until it is listed.

    add_event writes declared types only, so the later type is stored as a newer version would write it.
    """
    application = decide(stack, screening_id="PRIV-3")
    with stack.db.transaction() as session:
        session.add(
            Event(
                id=new_id("evt"),
                type="application.flagged",
                trial_id=TRIAL,
                site_id=stack.site_id,
                application_id=application,
                data={"criteria": ["E14"], "note": "immunodeficiency"},
                occurred_at=utcnow(),
            )
        )
        add_event(session, TrialStatusChanged(from_="RECRUITING", to="SUSPENDED"), trial_id=TRIAL)
    sponsor = feed(stack, token_for(stack, Role.SPONSOR, SPONSOR), *LATE)
    by_type = {e["type"]: e["data"] for e in sponsor}
    assert by_type["application.flagged"] == {}
    assert by_type["trial.status_changed"] == {"from": "RECRUITING", "to": "SUSPENDED"}  # no applicant's
    assert by_type["application.screened"] == {"decision": "eligible", "criteria_version": 1}
    admin = {e["type"]: e["data"] for e in feed(stack, stack.admin, *LATE)}
    assert admin["application.flagged"] == {"criteria": ["E14"], "note": "immunodeficiency"}


def test_a_sponsors_webhook_gets_the_decision_alone_and_an_admins_the_criteria(hooks: Stack) -> None:
    with receiving() as sponsors, receiving() as admins:
        sponsor_secret = subscribe(hooks, sponsors.url, SCREENED, token_for(hooks, Role.SPONSOR, SPONSOR))[
            "secret"
        ]
        admin_secret = subscribe(hooks, admins.url, SCREENED)["secret"]
        application = decide(hooks, screening_id="PRIV-HOOK", **IMMUNODEFICIENT)
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
