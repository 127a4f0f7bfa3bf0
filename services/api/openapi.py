"""The OpenAPI document as the service really answers: every error as problem+json, every status the
request path can produce, FHIR where FHIR is served."""

from __future__ import annotations

import copy
from typing import Any

PROBLEM_JSON = "application/problem+json"
PROBLEM = {"$ref": "#/components/schemas/ProblemOut"}
REASONS = {
    "400": "Malformed request (the body is not JSON, or a cursor or key is invalid)",
    "401": "Missing, malformed, unknown, expired or revoked token",
    "403": "The token's role may not do this",
    "404": "Not found, or not visible to this token",
    "413": "The body is too large",
    "415": "The body is not application/json",
    "422": "Invalid fields, each named in `errors`",
    "429": "Too many requests; see Retry-After",
    "503": "The database is unavailable; see Retry-After",
}
FHIR_READS = {
    ("/api/v1/applications/{application_id}", "get"): "ResearchSubject",
    ("/api/v1/trials/{trial_id}", "get"): "ResearchStudy",
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    """What the request path can answer beyond the view's own statuses."""
    found = {"422", "503"}
    if operation.get("security") or (path.startswith("/api/v1/") and not path.startswith("/api/v1/public/")):
        found |= {"401", "403", "429"}
    if "requestBody" in operation:
        found |= {"400", "413", "415"}
    if "{" in path:
        found.add("404")
    if method in ("get", "post") and path.startswith("/api/"):
        found.add("400")  # cursors, idempotency keys and other malformed parts
    return found


def as_served(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` whose error answers are the problem+json the service sends."""
    served = copy.deepcopy(document)
    for path, operations in served.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation) | {s for s in responses if s >= "400"}:
                responses[status] = {
                    "description": REASONS.get(status, responses.get(status, {}).get("description", "Error")),
                    "content": {PROBLEM_JSON: {"schema": PROBLEM}},
                }
            if (path, method) in FHIR_READS and "200" in responses:
                resource = FHIR_READS[(path, method)]
                responses["200"].setdefault("content", {})["application/fhir+json"] = {
                    "schema": {"type": "object", "description": f"A FHIR R4B {resource}"}
                }
    served.get("components", {}).get("schemas", {}).pop("ValidationErrorModel", None)
    return served
