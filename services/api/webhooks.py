"""/api/v1/webhooks: subscriptions, their deliveries and manual redelivery."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from models import Role
from services.api.context import caller, database, settings
from services.notifications.webhooks import (
    create_subscription,
    delete_subscription,
    delivery_view,
    find_subscription,
    list_deliveries,
    list_subscriptions,
    redeliver,
    rotate_secret,
    subscription_view,
)
from services.schemas.api import (
    DeliveryList,
    DeliveryOut,
    DeliveryPath,
    DeliveryQuery,
    NewWebhook,
    ProblemOut,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookPath,
)

tag = Tag(name="webhooks", description="Signed event deliveries (Standard Webhooks) to sponsors' systems")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
blueprint = APIBlueprint(
    "webhooks", __name__, url_prefix="/api/v1/webhooks", abp_tags=[tag], abp_security=SECURITY
)
ANSWERS = {401: ProblemOut, 403: ProblemOut, 404: ProblemOut}


@blueprint.post("", responses={201: WebhookCreated, 422: ProblemOut, **ANSWERS})
def create(body: NewWebhook) -> Response:
    """Subscribe a URL to event types; the answer carries the signing secret, shown only this once.

    A sponsor's subscription receives its own trials' events; an admin's, every trial's.
    """
    who = caller(Role.SPONSOR, Role.ADMIN)
    with database().transaction() as session:
        subscription, secret = create_subscription(session, who, body.url, list(body.event_types), settings())
        answer = {**subscription_view(subscription), "secret": secret}
    response = jsonify(WebhookCreated.model_validate(answer).model_dump(mode="json"))
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/webhooks/{answer['id']}"
    return response


@blueprint.get("", responses={200: WebhookList, **ANSWERS})
def index() -> Response:
    """The caller's subscriptions (admins: all), without their secrets."""
    who = caller(Role.SPONSOR, Role.ADMIN)
    with database().reading() as session:
        items = [WebhookOut.model_validate(subscription_view(s)) for s in list_subscriptions(session, who)]
    return jsonify(WebhookList(items=items).model_dump(mode="json"))


@blueprint.get("/<webhook_id>", responses={200: WebhookOut, **ANSWERS})
def read(path: WebhookPath) -> Response:
    who = caller(Role.SPONSOR, Role.ADMIN)
    with database().reading() as session:
        view = subscription_view(find_subscription(session, who, path.webhook_id))
    return jsonify(WebhookOut.model_validate(view).model_dump(mode="json"))


@blueprint.post("/<webhook_id>/rotate-secret", responses={200: WebhookCreated, **ANSWERS})
def rotate(path: WebhookPath) -> Response:
    """A new signing secret, shown this once. The replaced one keeps signing beside it (a second `v1`
    signature) for ACCRUAL_WEBHOOK_SECRET_OVERLAP_HOURS, so the receiver can switch without a gap."""
    who = caller(Role.SPONSOR, Role.ADMIN)
    with database().transaction() as session:
        subscription, secret = rotate_secret(session, who, path.webhook_id, settings())
        answer = {**subscription_view(subscription), "secret": secret}
    return jsonify(WebhookCreated.model_validate(answer).model_dump(mode="json"))


@blueprint.delete("/<webhook_id>", responses={204: None, **ANSWERS})
def delete(path: WebhookPath) -> Response:
    """Stop the subscription; its pending deliveries are cancelled."""
    who = caller(Role.SPONSOR, Role.ADMIN)
    with database().transaction() as session:
        delete_subscription(session, who, path.webhook_id)
    return Response(status=204)


@blueprint.get("/<webhook_id>/deliveries", responses={200: DeliveryList, **ANSWERS})
def deliveries(path: WebhookPath, query: DeliveryQuery) -> Response:
    """Deliveries, newest first, each with every attempt's time, status code and latency."""
    who = caller(Role.SPONSOR, Role.ADMIN)
    with database().reading() as session:
        rows = list_deliveries(session, who, path.webhook_id, query.status, query.limit)
        items = [DeliveryOut.model_validate(delivery_view(d)) for d in rows]
    return jsonify(DeliveryList(items=items).model_dump(mode="json"))


@blueprint.post(
    "/<webhook_id>/deliveries/<delivery_id>/redeliver",
    responses={202: DeliveryOut, 409: ProblemOut, 410: ProblemOut, **ANSWERS},
)
def send_again(path: DeliveryPath) -> Response:
    """Send a finished delivery again (same webhook-id, new timestamp and signature)."""
    who = caller(Role.SPONSOR, Role.ADMIN)
    with database().transaction() as session:
        delivery = redeliver(session, who, path.webhook_id, path.delivery_id)
        view = DeliveryOut.model_validate(delivery_view(delivery)).model_dump(mode="json")
    response = jsonify(view)
    response.status_code = 202
    return response
