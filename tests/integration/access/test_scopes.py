"""Scopes within a role, on SQLite and PostgreSQL: a coordinator's own site, a sponsor organisation's own
webhooks and trials, a delivery through its own webhook, an idempotency key through its own token."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Role, WebhookDelivery
from services.tokens import create_token
from tests.support.access.routes import FORBIDDEN, HIDDEN
from tests.support.access.world import (
    ADMIN,
    COORD_IN,
    COORD_OUT,
    SPONSOR,
    SPONSOR_IN,
    SPONSOR_OUT,
    SPONSORS,
    World,
    feed_of,
    item_ids,
    study_record,
)
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem
from tests.support.stack import TRIAL


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
