"""Per-app resources (settings, database) and the authenticated caller of a request."""

from __future__ import annotations

from flask import current_app, g, request, session

from config import Settings
from models import Role
from models.db import Database
from services.audit import reset_actor, set_actor
from services.problems import Problem
from services.tokens import Caller, authenticate, caller_by_token_id


def settings() -> Settings:
    value: Settings = current_app.extensions["accrual.settings"]
    return value


def database() -> Database:
    value: Database = current_app.extensions["accrual.db"]
    return value


def wants_fhir(format_parameter: str | None) -> bool:
    """FHIR when asked for by `?format=fhir` or by an Accept header preferring application/fhir+json."""
    if format_parameter is not None:
        return format_parameter == "fhir"
    best = request.accept_mimetypes.best_match(["application/json", "application/fhir+json"])
    return best == "application/fhir+json"


def cursor_key() -> bytes:
    """The key that signs pagination cursors."""
    value: bytes = current_app.extensions["accrual.cursor_key"]
    return value


PUBLIC_PREFIX = "/api/v1/public/"
DASHBOARD_PREFIX = "/dashboard/"
DASHBOARD_OPEN = ("/dashboard/login", "/dashboard/logout", "/dashboard/static/")
SESSION_KEY = "token_id"


def authenticate_request() -> None:
    """Before any view or body validation: every /api/v1 call but the public ones needs a valid token;
    every dashboard page but sign-in and its static files needs a token or a signed-in session."""
    path = request.path
    if path.startswith("/api/v1/") and not path.startswith(PUBLIC_PREFIX):
        g.caller = _authenticated()
    elif path.startswith(DASHBOARD_PREFIX) and not path.startswith(DASHBOARD_OPEN):
        g.caller = _session_caller() if "Authorization" not in request.headers else _authenticated()
    if "caller" in g:
        g.audit_actor = set_actor(g.caller.token_id, g.caller.role.value)


def forget_caller(_error: BaseException | None = None) -> None:
    """After the request: what this thread does next is not this caller's."""
    if "audit_actor" in g:
        reset_actor(g.audit_actor)


def caller(*roles: Role) -> Caller:
    """The request's caller; 403 when its role is not among `roles`."""
    found: Caller = g.caller if "caller" in g else _authenticated()
    if roles and found.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise Problem(403, "forbidden", f"this needs a {allowed} token; this one is {found.role.value}")
    return found


def _session_caller() -> Caller:
    """The caller of a signed-in dashboard session; its token is checked again on every request, so
    revoking the token ends the session. Sessions never authenticate /api/v1 (no CSRF exposure)."""
    token_id = session.get(SESSION_KEY)
    found = None
    if isinstance(token_id, str):
        with database().reading() as db_session:
            found = caller_by_token_id(db_session, token_id)
    if found is None:
        session.clear()
        raise Problem(401, "unauthorized", "sign in with a token, or send Authorization: Bearer <token>")
    return found


def _authenticated() -> Caller:
    """The bearer token's caller; 401 without a valid token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401, "unauthorized", "send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
        )
    with database().reading() as session:
        found = authenticate(session, token.strip())
    if found is None:
        raise Problem(
            401,
            "unauthorized",
            "the token is unknown, expired or revoked",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found
