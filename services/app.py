"""The HTTP application: the Flask app factory, the composition root of every API process."""

from __future__ import annotations

import logging

from flask import Response, jsonify, redirect, request
from flask_openapi3 import Info, OpenAPI
from flask_openapi3_swagger.templates import swagger_html_string
from werkzeug.middleware.proxy_fix import ProxyFix

import services.audit  # noqa: F401  registers the audit trail's unit-of-work hooks in every API process
from config import Settings, get_settings
from models.db import Database
from services.provenance import declare_service

__all__ = ["create_app"]

LANDING_LINKS = {
    "dashboard": "/dashboard/",
    "docs": "/docs",
    "openapi": "/openapi.json",
    "health": "/healthz",
}
LANDING_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Accrual</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; line-height: 1.5">
<h1>Accrual</h1>
<p>Recruitment into clinical trials: intake, screening, enrolment and the sponsors' figures.</p>
<ul>
<li><a href="/dashboard/">The dashboard</a>: sign in with your token to see your trials.</li>
<li><a href="/docs">The API documentation</a> (interactive), or
<a href="/openapi.json">the OpenAPI document</a> itself.</li>
</ul>
</body></html>
"""
DOCS_FALLBACK = (
    '<p style="font-family: system-ui, sans-serif; margin: 2rem">The interactive documentation needs '
    'JavaScript. The API is described by <a href="/openapi.json">the OpenAPI document</a>; people sign '
    'in at <a href="/dashboard/">the dashboard</a>.</p>'
)


def create_app(settings: Settings | None = None, database: Database | None = None) -> OpenAPI:
    """The HTTP API for `settings` (read from the environment when not given)."""
    from services.api import (
        applications,
        audit,
        events,
        health,
        metrics,
        prescreen,
        public,
        trials,
        vocabulary,
        webhooks,
        worklist,
    )
    from services.api.context import authenticate_request, forget_caller
    from services.api.correlation import install_correlation
    from services.api.errors import (
        on_validation_error,
        parse_json_body,
        refuse_nul_in_url,
        register_error_handlers,
    )
    from services.api.headers import install_security_headers
    from services.api.load_shedding import shed_late_requests
    from services.api.rate_limits import install_rate_limits, meter_intake
    from services.dashboard import blueprint as dashboard
    from services.dashboard import configure_sessions

    settings = settings or get_settings()
    declare_service("api")
    app = OpenAPI(
        __name__,
        info=Info(
            title="Accrual",
            version="1",
            description=(
                "Recruitment into clinical trials: intake and screening. The observations an applicant "
                "may carry, with their units and ranges: "
                "[GET /api/v1/vocabulary](/api/v1/vocabulary) (any token)."
            ),
        ),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        validation_error_status=422,
        validation_error_callback=on_validation_error,
        doc_prefix="/docs",
        doc_url="/openapi.json",
    )
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["accrual.settings"] = settings
    app.extensions["accrual.db"] = database or Database.for_settings(settings)
    app.extensions["accrual.cursor_key"] = settings.signing_key()  # read once, not per request
    logging.getLogger("services").setLevel(settings.log_level)
    install_correlation(app)
    install_rate_limits(app, settings)
    install_security_headers(app, settings)
    app.before_request(shed_late_requests)  # first: a shed request must cost nothing
    app.before_request(refuse_nul_in_url)
    app.before_request(authenticate_request)
    app.before_request(meter_intake)  # after authentication: metered by token id, not by header text
    app.teardown_request(forget_caller)
    app.before_request(parse_json_body)
    register_error_handlers(app)
    for module in (
        health, metrics, trials, applications, prescreen, public, events, webhooks, audit, vocabulary,
        worklist,
    ):  # fmt: skip
        app.register_api(module.blueprint)
    configure_sessions(app, settings)
    app.register_blueprint(dashboard)

    @app.get("/openapi.json", doc_ui=False)
    def openapi_document() -> Response:
        from flask import jsonify

        from services.api.openapi import as_served

        if "accrual.openapi" not in app.extensions:
            app.extensions["accrual.openapi"] = as_served(app.api_doc)
        return jsonify(app.extensions["accrual.openapi"])

    @app.get("/docs", doc_ui=False)
    def docs() -> Response:
        return redirect("/docs/swagger", code=302)  # type: ignore[return-value]

    # Swagger UI draws into #swagger-ui once its script runs; until then (or without scripts) the page
    # says where the plain document is, instead of an empty page or a lone "LOADING".
    app.config["SWAGGER_HTML_STRING"] = swagger_html_string.replace(
        '<div id="swagger-ui"></div>', f'<div id="swagger-ui">{DOCS_FALLBACK}</div>', 1
    )

    @app.get("/", doc_ui=False)
    def landing() -> Response:
        """A person is led to the dashboard and the API's documentation; a program gets the same as JSON."""
        if request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json":
            return jsonify(LANDING_LINKS)
        return Response(LANDING_PAGE, mimetype="text/html")

    if settings.trusted_proxies:
        # Only when told how many proxies set them: otherwise any client could name its own address.
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    return app
