"""Liveness and readiness."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from services.api.context import database, settings
from services.health import check_broker, check_database
from services.schemas.api import Health

tag = Tag(name="health", description="Liveness and readiness probes")
blueprint = APIBlueprint("health", __name__, abp_tags=[tag])


@blueprint.get("/healthz", responses={200: Health})
def healthz() -> Response:
    """The process is alive."""
    return jsonify(Health(status="ok").model_dump())


@blueprint.get("/readyz", responses={200: Health, 503: Health})
def readyz() -> Response:
    """Ready when the database and the broker both answer."""
    checks = {
        "database": check_database(database()) or "ok",
        "broker": check_broker(settings().broker_url) or "ok",
    }
    ready = all(v == "ok" for v in checks.values())
    response = jsonify(Health(status="ok" if ready else "unavailable", checks=checks).model_dump())
    response.status_code = 200 if ready else 503
    return response
