"""Every error leaves as RFC 9457 problem+json: validation, malformed bodies, HTTP errors, crashes."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from services.api.context import database
from services.audit import note
from services.errors import Conflict, DomainError
from services.log_lines import install_one_line_records
from services.problems import Problem, field_error, invalid, problem_for
from services.schemas.vocabulary import closest_names

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
HTTP_KINDS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
}


def problem_response(problem: Problem) -> Response:
    response = jsonify(problem.body(instance=request.path))
    response.status_code = problem.status
    response.mimetype = PROBLEM_JSON
    response.headers.update(problem.headers)
    return response


def _message(error: ErrorDetails) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _unknown_observation(error: ErrorDetails) -> str:
    """An applicant field outside the vocabulary: what it most likely meant."""
    suggestions = closest_names(str(error["loc"][-1]))
    meant = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
    return f"is not in the applicant vocabulary (GET /api/v1/vocabulary){meant}"


def validation_problem(exc: ValidationError) -> Problem:
    """422 naming each bad field; the rejected values themselves are never echoed back."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        unknown = error["type"] == "extra_forbidden" and len(loc) >= 2 and loc[-2] == "applicant"
        errors.append(field_error(loc, _unknown_observation(error) if unknown else _message(error)))
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return Problem(422, "validation-error", f"invalid fields: {fields}", errors=errors)


def on_validation_error(exc: ValidationError) -> Response:
    return problem_response(validation_problem(exc))


def parse_json_body() -> Response | None:
    """Refuse a body that is not JSON (415), is malformed (400) or too large (413) before any view runs."""
    if request.method not in BODY_METHODS or not request.path.startswith("/api/"):
        return None
    if not request.content_length and not request.data:
        return None
    if not request.is_json:
        return problem_response(Problem(415, "unsupported-media-type", "send the body as application/json"))
    try:
        body = request.get_json()
    except RequestEntityTooLarge:
        raise
    except Exception:
        return problem_response(Problem(400, "malformed-request", "the body is not valid JSON"))
    where = _first_nul(body, ())
    if where is not None:
        # No field may hold a NUL: PostgreSQL's text cannot store one, and C-level readers (getaddrinfo,
        # log tooling) stop at it, so what would be stored is not what was checked.
        field = ".".join(map(str, where)) or "body"
        error = field_error(where, NO_NUL)
        return problem_response(Problem(422, "validation-error", f"invalid fields: {field}", errors=[error]))
    return None


NO_NUL = "must not contain the NUL character (\\u0000)"


def refuse_nul_in_url() -> Response | None:
    """A NUL in the path or the query names nothing that can exist (PostgreSQL could not even compare
    it): 404 for the path, 422 naming the query parameter."""
    if "\x00" in request.path:
        return problem_response(Problem(404, "not-found", "no such resource"))
    if not request.path.startswith("/api/"):
        return None  # the dashboard reads one parameter, `next`, and sends anything odd home
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            return problem_response(invalid(name.replace("\x00", "\\u0000"), NO_NUL))
    return None


def _first_nul(value: Any, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """The path of the first string or key in a JSON document that holds a NUL character, else None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items: list[tuple[str | int, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return (*path, key.replace("\x00", "\\u0000"))  # named, but never echoed with its NUL
        found = _first_nul(item, (*path, key))
        if found is not None:
            return found
    return None


# The path parameter that names what a refused request tried to change, and its audit entity; the
# first present wins (a site's path names its trial too).
ATTEMPTED_ON = (
    ("application_id", "application"),
    ("site_id", "site"),
    ("webhook_id", "webhook"),
    ("trial_id", "trial"),
)
REFUSED = "refused"


def _attempted_on(error: DomainError) -> tuple[str, str]:
    """The audit entity and id of what the request tried to change; a duplicate submission names the
    application it duplicates; anything else its blueprint, `*`."""
    arguments = request.view_args or {}
    for parameter, entity in ATTEMPTED_ON:
        if parameter in arguments:
            return entity, str(arguments[parameter])
    existing = error.context.get("existing_application")
    if existing is not None:
        return "application", str(existing)
    return request.blueprint or "request", "*"


def audit_refusal(error: DomainError, problem: Problem) -> None:
    """A state change refused for the state it found (409) is an attempt the trail keeps: who (the
    request's audit actor), what (the route and method), and why not (the problem type, the status it
    was in). The request's transaction rolled back with every entry it had noted, so this is a small
    transaction of its own. Failing to write it must not turn the refusal into a 500: it is logged."""
    entity, entity_id = _attempted_on(error)
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    changes = {"attempted": f"{request.method} {rule}", "problem": f"/problems/{problem.kind}"}
    if "status_now" in error.context:
        changes["status_now"] = error.context["status_now"]
    try:
        with database().transaction() as session:
            note(session, entity, entity_id, REFUSED, changes)
    except SQLAlchemyError as exc:
        log.error("could not audit a refused %s %s (%s)", request.method, rule, type(exc).__name__)


def on_domain_error(error: DomainError) -> Response:
    problem = problem_for(error)
    if isinstance(error, Conflict):
        audit_refusal(error, problem)
    return problem_response(problem)


def register_error_handlers(app: Flask) -> None:
    # The paths and headers of requests reach log lines (gunicorn's access line, the handlers below):
    # none of them may start a line of its own.
    install_one_line_records()
    app.register_error_handler(Problem, problem_response)
    app.register_error_handler(DomainError, on_domain_error)
    app.register_error_handler(ValidationError, on_validation_error)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:
            detail = f"the body exceeds {app.config['MAX_CONTENT_LENGTH']} bytes"
        else:
            detail = exc.description or exc.name
        kind = HTTP_KINDS.get(status, "malformed-request" if status < 500 else "internal-error")
        return problem_response(Problem(status, kind, detail))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeoutError)
    def _database_away(exc: Exception) -> Response:
        # Connection refused, server restarting, lost connection, every pooled connection busy past
        # the pool's timeout: the transaction was rolled back, and the request can be repeated.
        log.warning("database unavailable on %s %s (%s)", request.method, request.path, type(exc).__name__)
        return problem_response(
            Problem(
                503,
                "service-unavailable",
                "the database is unavailable; nothing was stored, retry shortly",
                headers={"Retry-After": "5"},
            )
        )

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.path, exc_info=exc)
        return problem_response(
            Problem(500, "internal-error", "an internal error occurred; it has been logged")
        )
