"""Who may call what, on SQLite and PostgreSQL.

1. Every protected /api/v1 route answers 401 (problem+json, WWW-Authenticate: Bearer) to a missing,
   malformed, unknown, revoked or expired token, before its body or query is looked at.
2. Each role against each route: allowed, 403, or 404 where existence would leak. The expectations come
   from the contract's table of roles (../shared/contract/API.md), not from the code.
3. Nothing a sponsor or the public can get names an applicant or carries an observation.
4. The dashboard pages with each role.

One seeded world per database serves every case (building one takes a second); a case that changes
state makes its own application, webhook or site first, so the cases do not depend on each other.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text, update

from models import ApiToken, Application, Event, Role, Site, Trial, WebhookDelivery, WebhookSubscription
from services.criteria import bundled_document
from services.recruitment_counts import count_application
from services.screening import screen_application
from services.tokens import create_token
from tests.conftest import (
    PG_ADMIN_URL,
    TRIAL,
    Stack,
    eligible_applicant,
    make_settings,
    unavailable,
    wait_until,
)
from tests.integration.test_amendments import amended
from tests.integration.test_intake_api import assert_problem

SPONSOR = "Allife Medical Science and Technology Co., Ltd."  # NCT06359912's lead sponsor
OTHER_SPONSOR = "Another Pharma Ltd"
CANARY_SCREENING_ID = "CANARY-SPONSOR-7"
CANARY_REASON = "CANARY-REASON-7 haemoglobin fell to 7.1"
CANARY_ABI = 0.4321  # an observation value found nowhere else
CANARIES = ("CANARY", str(CANARY_ABI))
PROBLEM_JSON = "application/problem+json"

ADMIN = "admin"
COORD_IN = "coordinator-own-site"
COORD_OUT = "coordinator-other-site"
SPONSOR_IN = "sponsor-own-trial"
SPONSOR_OUT = "sponsor-other-org"
ROLES = (ADMIN, COORD_IN, COORD_OUT, SPONSOR_IN, SPONSOR_OUT)
SPONSORS = (SPONSOR_IN, SPONSOR_OUT)

ALLOWED = "allowed"  # 2xx, or a domain 4xx that proves the role and scope checks passed
FORBIDDEN = 403
HIDDEN = 404
Outcome = str | int

# The protected routes (rule, method) this file knows: a new route fails the walk until it is added below.
EXPECTED_PROTECTED_ROUTES = 26


# --- the world every case runs in -----------------------------------------------------------------


@dataclass
class World:
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
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return self.stack.client.open(path, method=method, headers=headers, json=body)

    def next(self) -> int:
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
            assert application_status(self.stack, application_id) == state
        return application_id

    def fresh_hook(self) -> str:
        response = self.call(
            "POST",
            "/api/v1/webhooks",
            SPONSOR_IN,
            {"url": "http://127.0.0.1:9/hook", "event_types": ["trial.target_reached"]},
        )
        assert response.status_code == 201, response.get_json()
        hook_id: str = response.get_json()["id"]
        return hook_id


def screen(stack: Stack, application_id: str) -> None:
    """Run the screening the worker would run, in this process."""
    with stack.db.sessions() as session:
        event_id = session.scalars(
            select(Event.id).where(Event.application_id == application_id).order_by(Event.seq.desc())
        ).first()
    screen_application(stack.db, application_id, str(event_id), 5)


def application_status(stack: Stack, application_id: str) -> str:
    with stack.db.sessions() as session:
        return session.get_one(Application, application_id).status


def build_world(stack: Stack) -> World:
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


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_available: bool
) -> Iterator[World]:
    """One seeded world per database for this module's cases."""
    tmp = tmp_path_factory.mktemp(f"matrix-{request.param}")
    database: str | None = None
    admin_engine = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'accrual.db'}"
    else:
        if not pg_available:
            unavailable(f"PostgreSQL at {PG_ADMIN_URL} (set ACCRUAL_TEST_PG_URL)")
        database = f"accrual_matrix_{os.getpid()}_{secrets.token_hex(4)}"
        admin_engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
    stack = Stack(make_settings(Path(tmp), url, webhook_allow_private=True))
    try:
        yield build_world(stack)
    finally:
        stack.close()
        if admin_engine is not None:
            with admin_engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin_engine.dispose()


# --- helpers --------------------------------------------------------------------------------------

PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# Ids of each kind that exist nowhere: a hidden resource must read exactly as one of these.
MISSING_IDS = {"application_id": "app_" + "0" * 20, "trial_id": "NCT00000000"}


def fill(rule: str, values: dict[str, str]) -> str:
    return PARAMETER.sub(lambda m: values[m.group(1)], rule)


def protected_routes(stack: Stack) -> list[tuple[str, str]]:
    """(method, rule) of every /api/v1 route but the public ones."""
    found = []
    for rule in stack.app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and not rule.rule.startswith("/api/v1/public/"):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((method, rule.rule))
    return sorted(found)


def all_screening_ids(stack: Stack) -> list[str]:
    with stack.db.sessions() as session:
        return list(session.scalars(select(Application.screening_id)))


def all_application_ids(stack: Stack) -> list[str]:
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
    return {item[key] for item in response.get_json()["items"]}


def normalised_detail(response: Any, *ids: str) -> str:
    detail: str = response.get_json()["detail"]
    for value in ids:
        detail = detail.replace(value, "<id>")
    return detail


def study_record(nct_id: str) -> dict[str, Any]:
    path = Path(__file__).resolve().parents[2] / "services" / "seed_data" / "NCT06359912.json"
    record: dict[str, Any] = json.loads(path.read_text())
    section = record["protocolSection"]
    section["identificationModule"]["nctId"] = nct_id
    section["identificationModule"]["briefTitle"] = f"Access matrix import {nct_id}"
    section["sponsorCollaboratorsModule"]["leadSponsor"]["name"] = "Matrix Import Pharma"
    return record


# --- the routes, each with what every role may do --------------------------------------------------

Params = dict[str, str]


@dataclass(frozen=True)
class Route:
    method: str
    rule: str
    expected: dict[str, Outcome]
    statuses: tuple[int, ...] = (200,)
    query: str = ""
    prepare: Callable[[World], Params] | None = None  # fresh ids for a case that changes state
    body: Callable[[World, str, Params], Any] | None = None  # the JSON body a role sends
    snapshot: Callable[[World, Params], Any] | None = None  # state a refused call must leave alone
    check: Callable[[World, str, Any, Params], None] | None = None  # on an allowed answer
    hides_like_missing: bool = False  # a 404 must read as for an id that does not exist

    @property
    def label(self) -> str:
        return f"{self.method} {self.rule.removeprefix('/api/v1')}"


def roles(
    admin: Outcome, coord_in: Outcome, coord_out: Outcome, sponsor_in: Outcome, sponsor_out: Outcome
) -> dict[str, Outcome]:
    return dict(zip(ROLES, (admin, coord_in, coord_out, sponsor_in, sponsor_out), strict=True))


ANY_ROLE = roles(ALLOWED, ALLOWED, ALLOWED, ALLOWED, ALLOWED)
ADMIN_ONLY = roles(ALLOWED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN)
# "coordinator of its site, admin": another site's application is hidden (404), a sponsor is refused.
APPLICATION_READ = roles(ALLOWED, ALLOWED, HIDDEN, FORBIDDEN, FORBIDDEN)
# "coordinator of its site": admins and sponsors are refused, another site's application is hidden.
APPLICATION_ACTION = roles(FORBIDDEN, ALLOWED, HIDDEN, FORBIDDEN, FORBIDDEN)
SUBMIT = roles(FORBIDDEN, ALLOWED, FORBIDDEN, FORBIDDEN, FORBIDDEN)
COORDINATORS = roles(FORBIDDEN, ALLOWED, ALLOWED, FORBIDDEN, FORBIDDEN)
LISTS_OF_OWN_APPLICATIONS = roles(ALLOWED, ALLOWED, ALLOWED, FORBIDDEN, FORBIDDEN)
# "sponsor of the trial, admin": another sponsor's trial report is hidden.
SPONSORS_TRIAL = roles(ALLOWED, FORBIDDEN, FORBIDDEN, ALLOWED, HIDDEN)
# "sponsor (own trials), admin": each sponsor gets its own slice.
SPONSOR_OR_ADMIN = roles(ALLOWED, FORBIDDEN, FORBIDDEN, ALLOWED, ALLOWED)
# "owner, admin": another organisation's webhook is hidden.
WEBHOOK_OWNER = roles(ALLOWED, FORBIDDEN, FORBIDDEN, ALLOWED, HIDDEN)
# v1.1 "trials visible to the caller: all for an admin, a sponsor's own trials, the trials of a
# coordinator's sites (anything else: 404, as if absent)"; both coordinators have a site in TRIAL.
TRIAL_READ = roles(ALLOWED, ALLOWED, ALLOWED, ALLOWED, HIDDEN)


# Application routes


def _status_and_history(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        application = session.get_one(Application, params["application_id"])
        return application.status, len(application.history), dict(application.observations)


def _submitted_count(world: World, params: Params) -> int:
    with world.stack.db.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Application)
                .where(Application.screening_id == params["screening_id"])
            )
            or 0
        )


def _check_submitted(world: World, role: str, response: Any, params: Params) -> None:
    body = response.get_json()
    assert body["status"] == "submitted" and body["site_id"] == world.site_a
    assert response.headers["Location"] == f"/api/v1/applications/{body['id']}"


def _check_listing(world: World, role: str, response: Any, params: Params) -> None:
    ids = item_ids(response)
    sites = {item["site_id"] for item in response.get_json()["items"]}
    if role == ADMIN:
        assert {world.canary, world.own_b} <= ids
    elif role == COORD_IN:
        assert world.canary in ids and world.own_b not in ids and sites == {world.site_a}
    else:
        assert ids == {world.own_b} and sites == {world.site_b}
        # Asking for the other site by name does not widen the scope.
        other = world.call("GET", f"/api/v1/applications?site_id={world.site_a}&limit=200", role)
        assert other.status_code == 200 and other.get_json()["items"] == []
        by_trial = world.call("GET", f"/api/v1/applications?trial_id={TRIAL}&limit=200", role)
        assert item_ids(by_trial) == {world.own_b}


def _check_read(world: World, role: str, response: Any, params: Params) -> None:
    body = response.get_json()
    assert body["id"] == world.canary and body["screening_id"] == CANARY_SCREENING_ID
    assert body["observations"]["abi"] == CANARY_ABI  # the canaries are really there to be leaked


def _check_status(status: str) -> Callable[[World, str, Any, Params], None]:
    def check(world: World, role: str, response: Any, params: Params) -> None:
        assert response.get_json()["status"] == status
        assert application_status(world.stack, params["application_id"]) == status

    return check


def _check_corrected(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["id"] == params["application_id"]
    with world.stack.db.sessions() as session:
        assert session.get_one(Application, params["application_id"]).observations["wagner_grade"] == 2


def _check_prescreen(world: World, role: str, response: Any, params: Params) -> None:
    assert [result["trial_id"] for result in response.get_json()["results"]] == [TRIAL]


APPLICATION_ROUTES = [
    Route(
        "POST",
        "/api/v1/applications",
        SUBMIT,
        statuses=(202,),
        prepare=lambda w: {"screening_id": f"SCR-MATRIX-{w.next():04d}"},
        # Everyone sends to site A of the trial: the other site's coordinator may not.
        body=lambda w, role, p: {
            "trial_id": TRIAL,
            "site_id": w.site_a,
            "applicant": eligible_applicant(p["screening_id"]),
        },
        snapshot=_submitted_count,
        check=_check_submitted,
    ),
    Route("GET", "/api/v1/applications", LISTS_OF_OWN_APPLICATIONS, query="?limit=200", check=_check_listing),
    Route(
        "GET",
        "/api/v1/applications/<application_id>",
        APPLICATION_READ,
        check=_check_read,
        hides_like_missing=True,
    ),
    Route(
        "PATCH",
        "/api/v1/applications/<application_id>",
        APPLICATION_ACTION,
        statuses=(200, 202),
        prepare=lambda w: {"application_id": w.fresh("eligible")},
        body=lambda w, role, p: {"applicant": {"wagner_grade": 2}},
        snapshot=_status_and_history,
        check=_check_corrected,
        hides_like_missing=True,
    ),
    Route(
        "POST",
        "/api/v1/applications/<application_id>/enroll",
        APPLICATION_ACTION,
        prepare=lambda w: {"application_id": w.fresh("eligible")},
        body=lambda w, role, p: {"reason": "consented"},
        snapshot=_status_and_history,
        check=_check_status("enrolled"),
        hides_like_missing=True,
    ),
    Route(
        "POST",
        "/api/v1/applications/<application_id>/review",
        APPLICATION_ACTION,
        prepare=lambda w: {"application_id": w.fresh("needs_review")},
        body=lambda w, role, p: {"decision": "eligible", "reason": "HIV test negative on file"},
        snapshot=_status_and_history,
        check=_check_status("eligible"),
        hides_like_missing=True,
    ),
    Route(
        "POST",
        "/api/v1/applications/<application_id>/withdraw",
        APPLICATION_ACTION,
        prepare=lambda w: {"application_id": w.fresh("submitted")},
        body=lambda w, role, p: {"reason": "moved away"},
        snapshot=_status_and_history,
        check=_check_status("withdrawn"),
        hides_like_missing=True,
    ),
    Route(
        "POST",
        "/api/v1/prescreen",
        COORDINATORS,
        body=lambda w, role, p: {
            "applicant": {k: v for k, v in eligible_applicant().items() if k != "screening_id"},
            "trial_ids": [TRIAL],
        },
        check=_check_prescreen,
    ),
]


# Trial routes


def _trial_target(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        trial = session.get_one(Trial, TRIAL)
        return trial.enrollment_target, trial.overall_status


def _trial_exists(world: World, params: Params) -> bool:
    with world.stack.db.sessions() as session:
        return session.get(Trial, params["new_trial"]) is not None


def _criteria_version(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        return session.get_one(Trial, TRIAL).current_criteria_version


def _sites_named(world: World, params: Params) -> int:
    with world.stack.db.sessions() as session:
        return int(
            session.scalar(select(func.count()).select_from(Site).where(Site.name == params["site_name"]))
            or 0
        )


def _site_a_status(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        site = session.get_one(Site, world.site_a)
        return site.status, site.enrollment_target


def _check_report(world: World, role: str, response: Any, params: Params) -> None:
    body = response.get_json()
    assert body["trial_id"] == TRIAL and body["applied_count"] >= 3 and body["counts"]["enrolled"] >= 1
    assert_names_no_applicant(world, response, application_ids_too=True)  # counts only


def _check_trial_list(world: World, role: str, response: Any, params: Params) -> None:
    trials = item_ids(response, "trial_id")
    if role == ADMIN:
        assert {TRIAL, "NCT03239535", "NL003-CLI-III-2"} <= trials
    elif role == SPONSOR_OUT:
        assert trials == set()  # another sponsor's trials are not listed, nor their counts
    else:
        assert trials == {TRIAL}  # its own sponsor's trial; the trial of a coordinator's site


def _check_sites(world: World, role: str, response: Any, params: Params) -> None:
    assert {world.site_a, world.site_b} <= item_ids(response, "site_id")


def _check_trial(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["trial_id"] == TRIAL


def _check_trial_created(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["trial_id"] == params["new_trial"]
    assert response.headers["Location"] == f"/api/v1/trials/{params['new_trial']}"


def _check_trial_target(world: World, role: str, response: Any, params: Params) -> None:
    assert _trial_target(world, params) == (27, "RECRUITING")


def _check_criteria(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["version"] == 1


def _check_same_criteria(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["version"] == 1 and _criteria_version(world, params) == 1


def _check_site_created(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["name"] == params["site_name"] and _sites_named(world, params) == 1


def _check_site_a(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["site_id"] == world.site_a
    assert _site_a_status(world, params)[0] == "RECRUITING"


TRIAL_ROUTES = [
    Route("GET", "/api/v1/trials", ANY_ROLE, check=_check_trial_list),
    Route(
        "POST",
        "/api/v1/trials",
        ADMIN_ONLY,
        statuses=(201,),
        prepare=lambda w: {"new_trial": f"NCT0999{w.next():04d}"},
        body=lambda w, role, p: study_record(p["new_trial"]),
        snapshot=_trial_exists,
        check=_check_trial_created,
    ),
    Route(
        "GET",
        "/api/v1/trials/<trial_id>",
        TRIAL_READ,
        check=_check_trial,
        hides_like_missing=True,
    ),
    Route(
        "PATCH",
        "/api/v1/trials/<trial_id>",
        ADMIN_ONLY,
        # The admin confirms the target; anyone else tries to lower it, which must change nothing.
        body=lambda w, role, p: {"enrollment_target": 27 if role == ADMIN else 5},
        snapshot=_trial_target,
        check=_check_trial_target,
    ),
    Route(
        "GET",
        "/api/v1/trials/<trial_id>/criteria",
        TRIAL_READ,
        check=_check_criteria,
        hides_like_missing=True,
    ),
    Route(
        "PUT",
        "/api/v1/trials/<trial_id>/criteria",
        ADMIN_ONLY,
        # The admin sends the current criteria again (no new version); anyone else an amendment.
        body=lambda w, role, p: bundled_document("NCT06359912.criteria.yaml") if role == ADMIN else amended(),
        snapshot=_criteria_version,
        check=_check_same_criteria,
    ),
    Route(
        "GET",
        "/api/v1/trials/<trial_id>/recruitment",
        SPONSORS_TRIAL,
        check=_check_report,
        hides_like_missing=True,
    ),
    Route("GET", "/api/v1/trials/<trial_id>/sites", TRIAL_READ, check=_check_sites, hides_like_missing=True),
    Route(
        "POST",
        "/api/v1/trials/<trial_id>/sites",
        ADMIN_ONLY,
        statuses=(201,),
        prepare=lambda w: {"site_name": f"Matrix site {w.next():04d}"},
        body=lambda w, role, p: {"name": p["site_name"], "city": "Tianjin"},
        snapshot=_sites_named,
        check=_check_site_created,
    ),
    Route(
        "PATCH",
        "/api/v1/trials/<trial_id>/sites/<site_id>",
        ADMIN_ONLY,
        body=lambda w, role, p: {"status": "RECRUITING"} if role == ADMIN else {"status": "SUSPENDED"},
        snapshot=_site_a_status,
        check=_check_site_a,
    ),
]


# Events, webhooks, audit


def feed_of(world: World, role: str | None = None, token: str | None = None, until: str | None = None) -> Any:
    """The whole event feed the caller sees. On PostgreSQL the feed shows an event only once every older
    transaction of the server has finished (other sessions' too), so wait for `until` (a trial or an
    application id) to appear, or for a few seconds."""
    headers = {"Authorization": f"Bearer {token or world.tokens[role or ADMIN]}"}

    def read() -> Any:
        response = world.stack.client.get("/api/v1/events?limit=1000", headers=headers)
        assert response.status_code == 200, response.get_json()
        text = response.get_data(as_text=True)
        return response if until is None or until in text else None

    return wait_until(read, timeout=15, what=f"{until} in the event feed")


def _check_events(world: World, role: str, response: Any, params: Params) -> None:
    if role != SPONSOR_OUT:
        response = feed_of(world, role, until=world.canary)
    items = response.get_json()["items"]
    trials = {item["trial_id"] for item in items}
    about_canary = [item["type"] for item in items if item.get("application_id") == world.canary]
    if role == SPONSOR_OUT:
        assert TRIAL not in trials and about_canary == []
        return
    assert {"application.submitted", "application.screened", "application.enrolled"} <= set(about_canary)
    if role == SPONSOR_IN:
        assert trials == {TRIAL}
        for item in items:
            assert not {"screening_id", "observations", "applicant"} & set(item["data"]), item
        assert_names_no_applicant(world, response, application_ids_too=False)


def _check_webhook_list(world: World, role: str, response: Any, params: Params) -> None:
    ids = item_ids(response)
    if role == ADMIN:
        assert {world.hook, world.admin_hook} <= ids
    elif role == SPONSOR_IN:
        assert world.hook in ids and world.admin_hook not in ids
    else:
        assert world.hook not in ids and world.admin_hook not in ids


def _subscription_count(world: World, params: Params) -> int:
    with world.stack.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(WebhookSubscription)) or 0)


def _webhook_alive(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        return session.get_one(WebhookSubscription, params["webhook_id"]).deleted_at


def _failed_delivery(world: World) -> Params:
    """The delivery as it stands at the end of its schedule, ready for a manual redelivery."""
    with world.stack.db.transaction() as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == world.delivery)
            .values(
                status="failed",
                next_attempt_at=None,
                lease_until=None,
                claim=None,
                completed_at=datetime.now(UTC),
            )
        )
    return {}


def _delivery_status(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        return session.get_one(WebhookDelivery, world.delivery).status


def _check_deliveries(world: World, role: str, response: Any, params: Params) -> None:
    assert world.delivery in item_ids(response)


def _check_audit(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["items"], "an empty audit trail"


def _check_webhook_created(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["secret"].startswith("whsec_")


def _check_webhook_read(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["id"] == world.hook


def _check_webhook_deleted(world: World, role: str, response: Any, params: Params) -> None:
    assert _webhook_alive(world, params) is not None


def _check_redelivered(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["status"] == "pending" and _delivery_status(world, params) == "pending"


FEED_ROUTES = [
    Route(
        "GET",
        "/api/v1/audit",
        ADMIN_ONLY,
        check=_check_audit,
    ),
    Route("GET", "/api/v1/events", SPONSOR_OR_ADMIN, query="?limit=1000", check=_check_events),
    Route(
        "POST",
        "/api/v1/webhooks",
        SPONSOR_OR_ADMIN,
        statuses=(201,),
        body=lambda w, role, p: {"url": "http://127.0.0.1:9/new", "event_types": ["trial.target_reached"]},
        snapshot=_subscription_count,
        check=_check_webhook_created,
    ),
    Route("GET", "/api/v1/webhooks", SPONSOR_OR_ADMIN, check=_check_webhook_list),
    Route(
        "GET",
        "/api/v1/webhooks/<webhook_id>",
        WEBHOOK_OWNER,
        check=_check_webhook_read,
    ),
    Route(
        "DELETE",
        "/api/v1/webhooks/<webhook_id>",
        WEBHOOK_OWNER,
        statuses=(204,),
        prepare=lambda w: {"webhook_id": w.fresh_hook()},
        snapshot=_webhook_alive,
        check=_check_webhook_deleted,
    ),
    Route("GET", "/api/v1/webhooks/<webhook_id>/deliveries", WEBHOOK_OWNER, check=_check_deliveries),
    Route(
        "POST",
        "/api/v1/webhooks/<webhook_id>/deliveries/<delivery_id>/redeliver",
        WEBHOOK_OWNER,
        statuses=(202,),
        prepare=_failed_delivery,
        snapshot=_delivery_status,
        check=_check_redelivered,
    ),
]

ROUTES = APPLICATION_ROUTES + TRIAL_ROUTES + FEED_ROUTES

# Where the code and the contract disagree: (route label, role) -> the reason, marked xfail(strict).
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def matrix_cases() -> list[Any]:
    cases = []
    for route in ROUTES:
        for role in ROLES:
            outcome = route.expected[role]
            ident = f"{route.label} as {role} -> {outcome}"
            bug = KNOWN_BUGS.get((route.label, role))
            marks = [pytest.mark.xfail(strict=True, reason=f"bug: {bug}")] if bug else []
            cases.append(pytest.param(route, role, id=ident, marks=marks))
    return cases


# --- 1. the route walk ----------------------------------------------------------------------------

BAD_CREDENTIALS = {
    "no header": {},
    "basic scheme": {"Authorization": "Basic x"},
    "empty bearer": {"Authorization": "Bearer "},
    "bearer without token": {"Authorization": "Bearer"},
    "not an acr token": {"Authorization": "Bearer hello"},
    "unknown acr token": {"Authorization": "Bearer acr_" + secrets.token_urlsafe(32)},
}
# Bodies that would each fail in their own way (malformed, wrong type, invalid) if they were looked at.
BAD_BODIES: dict[str, dict[str, Any]] = {
    "no body": {},
    "malformed json": {"data": b'{"trial_id": ', "content_type": "application/json"},
    "not json": {"data": b"trial_id=x", "content_type": "text/plain"},
    "invalid json": {"json": {"unexpected": [1, 2, 3]}},
}


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    body = response.get_json()
    assert body["status"] == 401 and body["detail"]


def test_the_matrix_names_every_protected_route(world: World) -> None:
    routes = protected_routes(world.stack)
    assert len(routes) == EXPECTED_PROTECTED_ROUTES, routes
    assert sorted((r.method, r.rule) for r in ROUTES) == routes
    assert all(set(r.expected) == set(ROLES) for r in ROUTES)


def test_every_protected_route_answers_401_before_looking_at_the_request(world: World) -> None:
    failures: list[str] = []
    walked = 0
    for method, rule in protected_routes(world.stack):
        walked += 1
        path = fill(rule, world.ids)
        bodies = BAD_BODIES if method in ("POST", "PUT", "PATCH") else {"no body": {}, "bad query": {}}
        for credential, headers in BAD_CREDENTIALS.items():
            for body_name, body in bodies.items():
                target = path + (
                    "?limit=-5&status=bogus&cursor=%%%&after=x" if body_name == "bad query" else ""
                )
                response = world.stack.client.open(target, method=method, headers=headers, **body)
                try:
                    assert_unauthorized(response)
                except AssertionError as exc:
                    failures.append(
                        f"{method} {rule} [{credential}, {body_name}]: {str(exc).splitlines()[0]}"
                    )
    assert walked == EXPECTED_PROTECTED_ROUTES
    assert failures == []
    # A body over the size limit is refused for want of a token too, before it is read.
    oversized = b"x" * (world.stack.settings.max_body_bytes + 1)
    for method, rule in protected_routes(world.stack):
        if method in ("POST", "PUT", "PATCH"):
            response = world.stack.client.open(
                fill(rule, world.ids), method=method, data=oversized, content_type="application/json"
            )
            assert_unauthorized(response)
    # Not even whether a path or a method exists is told before the token is checked.
    for method, path in (
        ("GET", "/api/v1/no-such-thing"),
        ("DELETE", "/api/v1/trials"),
        ("PUT", "/api/v1/events"),
    ):
        assert_unauthorized(world.stack.client.open(path, method=method))


def test_a_dashboard_session_or_cookie_is_no_token_for_the_api(world: World) -> None:
    client = world.stack.app.test_client()
    signed = client.post("/dashboard/login", data={"token": world.tokens[ADMIN], "next": "/dashboard/"})
    assert signed.status_code == 303
    assert client.get("/dashboard/").status_code == 200
    for method, rule in protected_routes(world.stack):
        assert_unauthorized(client.open(fill(rule, world.ids), method=method))


def test_a_revoked_or_expired_token_is_refused_on_its_next_request(stack: Stack) -> None:
    with stack.db.transaction() as session:
        revoked = create_token(session, Role.SPONSOR, sponsor=SPONSOR, name="to-revoke")
        expired = create_token(
            session, Role.COORDINATOR, [stack.site_id], expires_at=datetime.now(UTC) - timedelta(minutes=1)
        )
    auth = {"Authorization": f"Bearer {revoked}"}
    report = f"/api/v1/trials/{TRIAL}/recruitment"
    assert stack.client.get(report, headers=auth).status_code == 200
    with stack.db.transaction() as session:
        session.execute(
            update(ApiToken).where(ApiToken.name == "to-revoke").values(revoked_at=datetime.now(UTC))
        )
    assert_unauthorized(stack.client.get(report, headers=auth))
    assert_unauthorized(stack.client.post("/api/v1/webhooks", headers=auth, json={}))
    assert_unauthorized(stack.client.get("/api/v1/trials", headers={"Authorization": f"Bearer {expired}"}))
    assert_unauthorized(stack.submit(eligible_applicant(), token=expired))
    assert stack.client.get(report, headers={"Authorization": f"Bearer {stack.admin}"}).status_code == 200


# --- 2. the role x route x scope matrix -----------------------------------------------------------


@pytest.mark.parametrize(("route", "role"), matrix_cases())
def test_access_matrix(world: World, route: Route, role: str) -> None:
    params = {**world.ids, **(route.prepare(world) if route.prepare else {})}
    path = fill(route.rule, params) + route.query
    before = route.snapshot(world, params) if route.snapshot else None
    body = route.body(world, role, params) if route.body else None
    response = world.call(route.method, path, role, body)
    outcome = route.expected[role]
    if outcome == ALLOWED:
        assert response.status_code in route.statuses, (response.status_code, response.get_data(as_text=True))
        if role in SPONSORS:
            assert_names_no_applicant(world, response, application_ids_too=False)
        if route.check is not None:
            route.check(world, role, response, params)
        return
    assert isinstance(outcome, int)
    assert_problem(response, outcome)
    if route.snapshot is not None:
        assert route.snapshot(world, params) == before, "a refused call changed something"
    if route.hides_like_missing and outcome == HIDDEN:
        name = next(name for name in PARAMETER.findall(route.rule) if name in MISSING_IDS)
        missing = MISSING_IDS[name]
        again = world.call(route.method, fill(route.rule, {**params, name: missing}), role, body)
        assert again.status_code == HIDDEN
        assert normalised_detail(again, missing) == normalised_detail(response, params[name])


def test_a_coordinator_may_submit_to_its_own_site_only(world: World) -> None:
    """The other site's coordinator is refused site A above for its scope, not for its role."""
    applicant = eligible_applicant(f"SCR-MATRIX-{world.next():04d}")
    own = world.call(
        "POST",
        "/api/v1/applications",
        COORD_OUT,
        {"trial_id": TRIAL, "site_id": world.site_b, "applicant": applicant},
    )
    assert own.status_code == 202
    both = world.call(
        "POST",
        "/api/v1/applications",
        COORD_OUT,
        {
            "trial_id": TRIAL,
            "site_id": world.site_a,
            "applicant": eligible_applicant(f"SCR-MATRIX-{world.next():04d}"),
        },
    )
    assert_problem(both, 403)


def test_a_sponsor_never_sees_an_admins_webhook_or_its_deliveries(world: World) -> None:
    for role in SPONSORS:
        assert_problem(world.call("GET", f"/api/v1/webhooks/{world.admin_hook}", role), 404)
        assert_problem(world.call("GET", f"/api/v1/webhooks/{world.admin_hook}/deliveries", role), 404)


def test_a_delivery_is_reached_only_through_its_own_webhook(world: World) -> None:
    """The own-trial sponsor's webhook id with the id of a delivery of someone else's webhook."""
    with world.stack.db.sessions() as session:
        foreign = session.scalars(
            select(WebhookDelivery.id).where(WebhookDelivery.subscription_id == world.admin_hook)
        ).first()
    assert foreign is not None
    path = f"/api/v1/webhooks/{world.hook}/deliveries/{foreign}/redeliver"
    assert_problem(world.call("POST", path, SPONSOR_IN), 404)


def test_an_idempotency_key_replays_only_to_the_token_that_used_it(world: World) -> None:
    body = {
        "trial_id": TRIAL,
        "site_id": world.site_a,
        "applicant": eligible_applicant(f"SCR-MATRIX-{world.next():04d}"),
    }
    key = {"Idempotency-Key": f"matrix-{world.next()}"}
    first = world.stack.client.post(
        "/api/v1/applications",
        json=body,
        headers={**key, "Authorization": f"Bearer {world.tokens[COORD_IN]}"},
    )
    assert first.status_code == 202
    for role in (COORD_OUT, ADMIN, SPONSOR_IN):
        again = world.stack.client.post(
            "/api/v1/applications",
            json=body,
            headers={**key, "Authorization": f"Bearer {world.tokens[role]}"},
        )
        assert_problem(again, 403)
        assert first.get_json()["id"] not in again.get_data(as_text=True)


@pytest.mark.parametrize("role", [COORD_OUT, SPONSOR_IN, SPONSOR_OUT])
def test_the_fhir_form_of_an_application_is_guarded_alike(world: World, role: str) -> None:
    expected = HIDDEN if role == COORD_OUT else FORBIDDEN
    path = f"/api/v1/applications/{world.canary}"
    assert_problem(world.call("GET", f"{path}?format=fhir", role), expected)
    accept = {"Authorization": f"Bearer {world.tokens[role]}", "Accept": "application/fhir+json"}
    assert_problem(world.stack.client.get(path, headers=accept), expected)


def test_a_webhook_belongs_to_the_sponsor_organisation_not_only_its_token(world: World) -> None:
    """API.md's "owner" of a webhook, read with its roles ("bound to a sponsor organisation"): another
    token of the same organisation (a rotated token, say) manages it; a token of another does not."""
    with world.stack.db.transaction() as session:
        rotated = create_token(session, Role.SPONSOR, sponsor=SPONSOR.lower())
    headers = {"Authorization": f"Bearer {rotated}"}
    assert world.stack.client.get(f"/api/v1/webhooks/{world.hook}", headers=headers).status_code == 200
    assert world.hook in item_ids(world.stack.client.get("/api/v1/webhooks", headers=headers))


ACCENTED_SPONSOR = "Östra Sjukhuset Forskning AB"  # a capital letter outside ASCII


@pytest.mark.parametrize("what", ["recruitment report", "event feed", "own webhook", "webhook list"])
def test_a_sponsor_with_a_non_ascii_name_gets_its_own_trials(world: World, what: str) -> None:
    trial_id = f"NCT0998{world.next():04d}"
    record = study_record(trial_id)
    record["protocolSection"]["sponsorCollaboratorsModule"]["leadSponsor"]["name"] = ACCENTED_SPONSOR
    admin = {"Authorization": f"Bearer {world.tokens[ADMIN]}"}
    assert world.stack.client.post("/api/v1/trials", json=record, headers=admin).status_code == 201
    changed = world.stack.client.patch(
        f"/api/v1/trials/{trial_id}", json={"overall_status": "SUSPENDED"}, headers=admin
    )
    assert changed.status_code == 200  # a trial.status_changed event of that trial
    with world.stack.db.transaction() as session:
        token = create_token(session, Role.SPONSOR, sponsor=ACCENTED_SPONSOR)  # the very same spelling
    headers = {"Authorization": f"Bearer {token}"}
    client = world.stack.client
    if what == "recruitment report":
        assert client.get(f"/api/v1/trials/{trial_id}/recruitment", headers=headers).status_code == 200
    elif what == "event feed":
        # Wait for the event as its admin sees it, then read the feed as its sponsor.
        feed_of(world, ADMIN, until=trial_id)
        items = feed_of(world, token=token).get_json()["items"]
        assert trial_id in {item["trial_id"] for item in items}
    else:
        hook = client.post(
            "/api/v1/webhooks",
            json={"url": "http://127.0.0.1:9/ostra", "event_types": ["trial.status_changed"]},
            headers=headers,
        )
        assert hook.status_code == 201
        if what == "own webhook":
            assert client.get(f"/api/v1/webhooks/{hook.get_json()['id']}", headers=headers).status_code == 200
        else:
            assert hook.get_json()["id"] in item_ids(client.get("/api/v1/webhooks", headers=headers))


# --- 3. what sponsors and the public can get ------------------------------------------------------


def test_nothing_a_sponsor_or_the_public_gets_names_an_applicant(world: World) -> None:
    # The canaries are there to be found by those who may see them.
    coordinator = world.call("GET", f"/api/v1/applications/{world.canary}", COORD_IN).get_data(as_text=True)
    assert CANARY_SCREENING_ID in coordinator and str(CANARY_ABI) in coordinator
    history = world.call("GET", f"/api/v1/applications/{world.withdrawn}", ADMIN).get_data(as_text=True)
    assert "CANARY-REASON-7" in history

    sponsor_paths = [
        "/api/v1/trials",
        f"/api/v1/trials/{TRIAL}",
        f"/api/v1/trials/{TRIAL}/criteria",
        f"/api/v1/trials/{TRIAL}/sites",
        f"/api/v1/trials/{TRIAL}/recruitment",
        "/api/v1/events?limit=1000",
        "/api/v1/webhooks",
        f"/api/v1/webhooks/{world.hook}",
        f"/api/v1/webhooks/{world.hook}/deliveries",
        "/dashboard/",
        f"/dashboard/trials/{TRIAL}",
    ]
    answered = {role: 0 for role in SPONSORS}
    for role in SPONSORS:
        for path in sponsor_paths:
            response = world.call("GET", path, role)
            if response.status_code == 200:
                answered[role] += 1
                events = path.startswith("/api/v1/events")  # these name applications, by contract
                assert_names_no_applicant(world, response, application_ids_too=not events)
    # The own-trial sponsor got every one; the other one its (empty) trial list, its feed, its webhooks
    # and its index: another sponsor's trial, sites and criteria read as absent.
    assert answered == {SPONSOR_IN: len(sponsor_paths), SPONSOR_OUT: 4}

    with world.stack.db.sessions() as session:
        trials = list(session.scalars(select(Trial.trial_id)))
        applied = session.scalar(
            select(func.count()).select_from(Application).where(Application.trial_id == TRIAL)
        )
    for trial_id in trials:
        public = world.stack.client.get(f"/api/v1/public/trials/{trial_id}")
        assert public.status_code == 200
        assert set(public.get_json()) == {
            "trial_id", "title", "conditions", "overall_status", "cities", "applied_count"
        }  # fmt: skip
        assert_names_no_applicant(world, public, application_ids_too=True)
    summary = world.stack.client.get(f"/api/v1/public/trials/{TRIAL}").get_json()
    assert summary["applied_count"] == applied and isinstance(applied, int) and applied >= 3
    assert_problem(world.stack.client.get("/api/v1/public/trials/NCT00000000"), 404)


# --- 4. the dashboard ----------------------------------------------------------------------------

DASHBOARD = {
    f"/dashboard/trials/{TRIAL}": roles(200, 403, 403, 200, 404),
    "/dashboard/": roles(200, 403, 403, 200, 200),
}


@pytest.mark.parametrize(
    ("page", "role"),
    [pytest.param(page, role, id=f"GET {page} as {role}") for page in DASHBOARD for role in ROLES],
)
def test_dashboard_pages_by_role(world: World, page: str, role: str) -> None:
    response = world.call("GET", page, role)
    assert response.status_code == DASHBOARD[page][role]
    assert "text/html" in response.content_type
    html = response.get_data(as_text=True)
    if role == SPONSOR_OUT and response.status_code == 200:
        assert TRIAL not in html  # another organisation's trial is not even listed
    if role in SPONSORS and response.status_code == 200:
        assert_names_no_applicant(world, response, application_ids_too=True)
