"""The world every access test runs in: one seeded stack with a second site, a token per role, canary
applications, webhooks and a delivery; and what may not leak to a sponsor or the public.

One seeded world per database serves every case (building one takes a second); a case that changes
state makes its own application, webhook or site first, so the cases do not depend on each other.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import Application, Role, WebhookDelivery
from services.reporting.counts import count_application
from services.tokens import create_token
from tests.support.applicants import eligible_applicant
from tests.support.database import status_of
from tests.support.registry import registry_record
from tests.support.relay import relay
from tests.support.screening import screen
from tests.support.servers import fresh_pg_database
from tests.support.stack import TRIAL, Stack, make_settings, sqlite_url
from tests.support.waiting import wait_until

SPONSOR = "Allife Medical Science and Technology Co., Ltd."  # NCT06359912's lead sponsor
OTHER_SPONSOR = "Another Pharma Ltd"
CANARY_SCREENING_ID = "CANARY-SPONSOR-7"
CANARY_REASON = "CANARY-REASON-7 haemoglobin fell to 7.1"
CANARY_ABI = 0.4321  # an observation value found nowhere else
CANARIES = ("CANARY", str(CANARY_ABI))

ADMIN = "admin"
COORD_IN = "coordinator-own-site"
COORD_OUT = "coordinator-other-site"
SPONSOR_IN = "sponsor-own-trial"
SPONSOR_OUT = "sponsor-other-org"
ROLES = (ADMIN, COORD_IN, COORD_OUT, SPONSOR_IN, SPONSOR_OUT)
SPONSORS = (SPONSOR_IN, SPONSOR_OUT)


# --- the world ------------------------------------------------------------------------------------


@dataclass
class World:
    """The seeded stack, a token per role, and the ids of what the cases read."""

    stack: Stack
    tokens: dict[str, str]
    site_a: str  # NCT06359912's seed site: COORD_IN's
    site_b: str  # a second site of the same trial: COORD_OUT's
    canary: str  # an application at site A, enrolled, with the canary screening id and observation
    withdrawn: str  # an application at site A, withdrawn with a canary reason
    own_b: str  # COORD_OUT's own application at site B
    hook: str  # SPONSOR_IN's webhook, which has deliveries
    admin_hook: str  # an admin's webhook (every trial's events)
    delivery: str  # a delivery of `hook`
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def ids(self) -> dict[str, str]:
        """Real ids for every path parameter of the API."""
        return {
            "trial_id": TRIAL,
            "site_id": self.site_a,
            "application_id": self.canary,
            "webhook_id": self.hook,
            "delivery_id": self.delivery,
        }

    def call(self, method: str, path: str, role: str | None, body: Any = None) -> Any:
        """A request as `role` (or with no token at all)."""
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return self.stack.client.open(path, method=method, headers=headers, json=body)

    def next(self) -> int:
        """A number no other case of this world has had, for unique names and ids."""
        return next(self.counter)

    def fresh(self, state: str = "submitted") -> str:
        """A new application at site A, submitted by its coordinator, then screened to `state`."""
        applicant = eligible_applicant(f"SCR-MATRIX-{self.next():04d}")
        if state == "needs_review":
            del applicant["hiv_positive"]
        response = self.call(
            "POST",
            "/api/v1/applications",
            COORD_IN,
            {"trial_id": TRIAL, "site_id": self.site_a, "applicant": applicant},
        )
        assert response.status_code == 202, response.get_json()
        application_id: str = response.get_json()["id"]
        if state != "submitted":
            screen(self.stack, application_id)
            assert status_of(self.stack, application_id) == state
        return application_id

    def fresh_hook(self) -> str:
        """A new webhook of the own-trial sponsor."""
        response = self.call(
            "POST",
            "/api/v1/webhooks",
            SPONSOR_IN,
            {"url": "http://127.0.0.1:9/hook", "event_types": ["trial.target_reached"]},
        )
        assert response.status_code == 201, response.get_json()
        hook_id: str = response.get_json()["id"]
        return hook_id


def build_world(stack: Stack) -> World:
    """Build the world in `stack`: a second site, the tokens, the canaries, two webhooks, a delivery."""
    client, admin = stack.client, {"Authorization": f"Bearer {stack.admin}"}
    created = client.post(
        f"/api/v1/trials/{TRIAL}/sites",
        json={"name": "Matrix second site", "city": "Shanghai", "country": "China"},
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    site_b = created.get_json()["site_id"]
    with stack.db.transaction() as session:
        tokens = {
            ADMIN: stack.admin,
            COORD_IN: stack.coordinator,
            COORD_OUT: create_token(session, Role.COORDINATOR, [site_b]),
            # Matched case-insensitively: the token names the sponsor in capitals.
            SPONSOR_IN: create_token(session, Role.SPONSOR, sponsor=SPONSOR.upper()),
            SPONSOR_OUT: create_token(session, Role.SPONSOR, sponsor=OTHER_SPONSOR),
        }
    world = World(stack, tokens, stack.site_id, site_b, "", "", "", "", "", "")
    every_application_event = [
        "application.submitted",
        "application.screened",
        "application.enrolled",
        "application.withdrawn",
    ]
    for role in (SPONSOR_IN, ADMIN):
        hook = world.call(
            "POST",
            "/api/v1/webhooks",
            role,
            {"url": "http://127.0.0.1:9/h", "event_types": every_application_event},
        )
        assert hook.status_code == 201, hook.get_json()
        if role == SPONSOR_IN:
            world.hook = hook.get_json()["id"]
        else:
            world.admin_hook = hook.get_json()["id"]

    canary = world.call(
        "POST",
        "/api/v1/applications",
        COORD_IN,
        {
            "trial_id": TRIAL,
            "site_id": world.site_a,
            "applicant": eligible_applicant(CANARY_SCREENING_ID, abi=CANARY_ABI),
        },
    )
    assert canary.status_code == 202, canary.get_json()
    world.canary = canary.get_json()["id"]
    screen(stack, world.canary)
    enrolled = world.call("POST", f"/api/v1/applications/{world.canary}/enroll", COORD_IN, {})
    assert enrolled.status_code == 200, enrolled.get_json()

    world.withdrawn = world.fresh("eligible")
    withdrawn = world.call(
        "POST", f"/api/v1/applications/{world.withdrawn}/withdraw", COORD_IN, {"reason": CANARY_REASON}
    )
    assert withdrawn.status_code == 200, withdrawn.get_json()

    own = world.call(
        "POST",
        "/api/v1/applications",
        COORD_OUT,
        {"trial_id": TRIAL, "site_id": site_b, "applicant": eligible_applicant("SCR-MATRIX-B")},
    )
    assert own.status_code == 202, own.get_json()
    world.own_b = own.get_json()["id"]

    relay(stack)  # writes the webhook deliveries the events are owed
    with stack.db.sessions() as session:
        delivery = session.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.subscription_id == world.hook)
            .order_by(WebhookDelivery.created_at)
        ).first()
    assert delivery is not None
    world.delivery = delivery
    for application_id in all_application_ids(stack):  # as the counting consumer would
        count_application(stack.db, application_id)
    return world


@contextlib.contextmanager
def open_world(kind: str, directory: Path) -> Iterator[World]:
    """The world built on "sqlite" or "postgres" (a database cloned from the tests' template); its stack
    closed and its database dropped afterwards."""
    with contextlib.ExitStack() as cleanup:
        url = sqlite_url(directory) if kind == "sqlite" else cleanup.enter_context(fresh_pg_database(False))
        stack = Stack(make_settings(directory, url, webhook_allow_private=True))
        cleanup.callback(stack.close)
        yield build_world(stack)


# --- what the world holds, and what must not leak --------------------------------------------------


def all_screening_ids(stack: Stack) -> list[str]:
    """Every application's screening id."""
    with stack.db.sessions() as session:
        return list(session.scalars(select(Application.screening_id)))


def all_application_ids(stack: Stack) -> list[str]:
    """Every application's id."""
    with stack.db.sessions() as session:
        return list(session.scalars(select(Application.id)))


def assert_names_no_applicant(world: World, response: Any, application_ids_too: bool) -> None:
    """Neither a canary, nor any screening id (nor, if asked, any application id) is in the answer."""
    body = response.get_data(as_text=True)
    for canary in CANARIES:
        assert canary not in body, f"{canary!r} leaked in {response.request.path}"
    for screening_id in all_screening_ids(world.stack):
        assert screening_id not in body, f"screening id {screening_id} leaked in {response.request.path}"
    if application_ids_too:
        for application_id in all_application_ids(world.stack):
            assert application_id not in body, f"application {application_id} in {response.request.path}"


def item_ids(response: Any, key: str = "id") -> set[str]:
    """The `key` of every item of a listing."""
    return {item[key] for item in response.get_json()["items"]}


def feed_of(
    world: World,
    role: str | None = None,
    token: str | None = None,
    until: str | None = None,
    until_types: frozenset[str] = frozenset(),
) -> Any:
    """The whole event feed the caller sees. On PostgreSQL the feed shows an event only once every older
    transaction of the server has finished (other sessions' too), so wait for `until` (a trial or an
    application id) to appear, with every event type in `until_types` about it, or for a few seconds."""
    headers = {"Authorization": f"Bearer {token or world.tokens[role or ADMIN]}"}

    def about_until(items: list[dict[str, Any]]) -> set[str]:
        return {item["type"] for item in items if until in (item.get("application_id"), item.get("trial_id"))}

    def read() -> Any:
        response = world.stack.client.get("/api/v1/events?limit=1000", headers=headers)
        assert response.status_code == 200, response.get_json()
        if until is None:
            return response
        types = about_until(response.get_json()["items"])
        return response if types and until_types <= types else None

    return wait_until(read, timeout=15, what=f"{until} {sorted(until_types)} in the event feed")


def study_record(nct_id: str) -> dict[str, Any]:
    """NCT06359912's registry record as another trial of another sponsor, to import."""
    study = registry_record()
    section = study["protocolSection"]
    section["identificationModule"]["nctId"] = nct_id
    section["identificationModule"]["briefTitle"] = f"Access matrix import {nct_id}"
    section["sponsorCollaboratorsModule"]["leadSponsor"]["name"] = "Matrix Import Pharma"
    return study
