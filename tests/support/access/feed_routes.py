"""The routes of events, webhooks and the audit trail in the access matrix."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from models import WebhookDelivery, WebhookSubscription
from tests.support.access.routes import ADMIN_ONLY, SPONSOR_OR_ADMIN, WEBHOOK_OWNER, Params, Route
from tests.support.access.world import (
    ADMIN,
    SPONSOR_IN,
    SPONSOR_OUT,
    World,
    assert_names_no_applicant,
    feed_of,
    item_ids,
)
from tests.support.stack import TRIAL

_CANARY_EVENTS = frozenset({"application.submitted", "application.screened", "application.enrolled"})


def _check_events(world: World, role: str, response: Any, params: Params) -> None:
    if role != SPONSOR_OUT:
        response = feed_of(world, role, until=world.canary, until_types=_CANARY_EVENTS)
    items = response.get_json()["items"]
    trials = {item["trial_id"] for item in items}
    about_canary = [item["type"] for item in items if item.get("application_id") == world.canary]
    if role == SPONSOR_OUT:
        assert TRIAL not in trials and about_canary == []
        return
    assert set(about_canary) >= _CANARY_EVENTS
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


def _sealed_secret(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        return session.get_one(WebhookSubscription, params["webhook_id"]).secret_sealed


def _check_rotated(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["secret"].startswith("whsec_") and response.get_json()["previous_secret_until"]


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
    Route(
        "POST",
        "/api/v1/webhooks/<webhook_id>/rotate-secret",
        WEBHOOK_OWNER,
        prepare=lambda w: {"webhook_id": w.fresh_hook()},
        snapshot=_sealed_secret,
        check=_check_rotated,
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
