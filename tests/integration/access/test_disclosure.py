"""Nothing a sponsor or the public can get names an applicant or carries an observation, and the
dashboard's pages with each role; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import Application, Trial
from tests.support.access.routes import roles
from tests.support.access.world import (
    ADMIN,
    CANARY_ABI,
    CANARY_SCREENING_ID,
    COORD_IN,
    COORD_OUT,
    ROLES,
    SPONSOR_IN,
    SPONSOR_OUT,
    SPONSORS,
    World,
    assert_names_no_applicant,
)
from tests.support.http import assert_problem
from tests.support.stack import TRIAL


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
    # A coordinator's first page is their own sites (issue 16): allowed, and holding nothing of another.
    "/dashboard/": roles(200, 200, 200, 200, 200),
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
    if role == COORD_IN and response.status_code == 200:
        # Its own site (the latest decisions may have moved past the canary); never site B's application.
        assert world.site_a in html and world.own_b not in html and world.site_b not in html
    if role == COORD_OUT and response.status_code == 200:
        assert world.site_b in html and world.canary not in html and CANARY_SCREENING_ID not in html
        assert world.site_a not in html
