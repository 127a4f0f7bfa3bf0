"""Every error leaves as RFC 9457 problem+json: validation, malformed bodies, HTTP errors, crashes."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from services.problems import Problem, field_error

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


def validation_problem(exc: ValidationError) -> Problem:
    """422 naming each bad field; the rejected values themselves are never echoed back."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        errors.append(field_error(tuple(error["loc"]), _message(error)))
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
        request.get_json()
    except RequestEntityTooLarge:
        raise
    except Exception:
        return problem_response(Problem(400, "malformed-request", "the body is not valid JSON"))
    return None


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(Problem, problem_response)
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
