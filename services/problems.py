"""RFC 9457 problem details: the catalogue of problem types, the exception that carries one, and the one
table that says which problem each domain error is (services.errors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services import errors

PROBLEM_TYPES = {
    "validation-error": "Request has invalid fields",
    "malformed-request": "Request body is not valid JSON",
    "unsupported-media-type": "Unsupported media type",
    "body-too-large": "Request body too large",
    "unauthorized": "Authentication required",
    "forbidden": "Not allowed",
    "not-found": "Not found",
    "duplicate-application": "Applicant already submitted",
    "not-recruiting": "Not recruiting",
    "target-reached": "Enrolment target reached",
    "target-below-enrolled": "Enrolment target below the enrolled count",
    "idempotency-key-reused": "Idempotency-Key already used",
    "invalid-idempotency-key": "Invalid Idempotency-Key",
    "invalid-cursor": "Invalid cursor",
    "cursor-expired": "Cursor older than the events kept",
    "event-expired": "Event no longer kept",
    "too-many-requests": "Too many requests",
    "service-unavailable": "Service unavailable",
    "overloaded": "Server overloaded",
    "invalid-state-transition": "Not allowed in the current status",
    "precondition-failed": "The resource has changed",
    "precondition-required": "The request must name the version it changes",
    "invalid-criteria": "Criteria cannot be compiled",
    "method-not-allowed": "Method not allowed",
    "internal-error": "Internal error",
}


class Problem(Exception):
    """An HTTP problem; `errors` names each bad field as {field, pointer, detail}."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        if kind not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {kind}")
        self.status = status
        self.kind = kind
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "type": f"/problems/{self.kind}",
            "title": PROBLEM_TYPES[self.kind],
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            payload["instance"] = instance
        if self.errors is not None:
            payload["errors"] = self.errors
        payload.update(self.extensions)
        return payload


def _pointer_token(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def field_error(path: str | Sequence[str | int], detail: str) -> dict[str, str]:
    """One entry of `errors`: the field as a dotted path and as an RFC 6901 JSON pointer into the body."""
    parts: Sequence[str | int] = path.split(".") if isinstance(path, str) else path
    return {
        "field": ".".join(str(part) for part in parts) or "body",
        "pointer": "".join("/" + _pointer_token(part) for part in parts),
        "detail": detail,
    }


def invalid(field: str, detail: str) -> Problem:
    return Problem(422, "validation-error", f"{field}: {detail}", errors=[field_error(field, detail)])


# Each domain error's problem; a subclass not listed takes its nearest listed ancestor's.
DOMAIN_PROBLEMS: dict[type[errors.DomainError], tuple[int, str]] = {
    errors.NotFound: (404, "not-found"),
    errors.NotAllowed: (403, "forbidden"),
    errors.InvalidInput: (422, "validation-error"),
    errors.InvalidCursor: (400, "invalid-cursor"),
    errors.CursorExpired: (410, "cursor-expired"),
    errors.EventExpired: (410, "event-expired"),
    errors.InvalidIdempotencyKey: (400, "invalid-idempotency-key"),
    errors.IdempotencyKeyReused: (422, "idempotency-key-reused"),
    errors.Conflict: (409, "invalid-state-transition"),
    errors.AlreadySubmitted: (409, "duplicate-application"),
    errors.NotRecruiting: (409, "not-recruiting"),
    errors.TargetReached: (409, "target-reached"),
    errors.TargetBelowEnrolled: (409, "target-below-enrolled"),
    errors.StaleVersion: (412, "precondition-failed"),
    errors.PreconditionRequired: (428, "precondition-required"),
    errors.InvalidCriteria: (422, "invalid-criteria"),
}


def problem_for(error: errors.DomainError) -> Problem:
    """The problem a domain error is answered with: its status and type, its fields, its context."""
    status, kind = next(DOMAIN_PROBLEMS[cls] for cls in type(error).__mro__ if cls in DOMAIN_PROBLEMS)
    fields = [field_error(field.parts(), field.detail) for field in error.fields] or None
    extensions = dict(error.context)
    headers = {}
    if isinstance(error, errors.AlreadySubmitted) and "existing_application" in extensions:
        url = f"/api/v1/applications/{extensions['existing_application']}"
        extensions["existing_application_url"] = url
        headers["Location"] = url
    return Problem(status, kind, error.detail, errors=fields, headers=headers, **extensions)
