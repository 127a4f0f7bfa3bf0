"""Per-app resources (settings, database) and the authenticated caller of a request."""

from __future__ import annotations

import time

from flask import current_app, g, request, session

from config import Settings
from models import Role
from models.db import Database
from services.api.rate_limits import count_failed_authentication
from services.audit import reset_actor, set_actor
from services.catalog import CatalogAt, catalog_at
from services.problems import Problem
from services.tokens import Caller, caller_of_session


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
# A dashboard session names its token and the token's session generation at sign-in; signing out
# moves the generation on, which ends every session stamped with an older one (services.tokens).
SESSION_KEY = "token_id"
GENERATION_KEY = "generation"
# When the session was signed in and last used (Unix seconds, in the signed cookie): a session ends
# ACCRUAL_SESSION_HOURS after sign-in, or once unused for ACCRUAL_SESSION_IDLE_MINUTES, whichever
# comes first. The cookie is re-signed at every request, so only these stamps bound its life.
SIGNED_IN_AT_KEY = "signed_in_at"
LAST_SEEN_KEY = "last_seen"


def stamp_sign_in() -> None:
    """Mark the session signed in, and used, now."""
    session[SIGNED_IN_AT_KEY] = session[LAST_SEEN_KEY] = int(time.time())


def _session_lasts() -> bool:
    """Whether the session is neither idle too long nor older than its lifetime; if so, it is used now."""
    now = int(time.time())
    signed_in_at, last_seen = session.get(SIGNED_IN_AT_KEY), session.get(LAST_SEEN_KEY)
    if not isinstance(signed_in_at, int) or not isinstance(last_seen, int):
        return False
    limits = settings()
    if now - last_seen > limits.session_idle_minutes * 60 or now - signed_in_at > limits.session_hours * 3600:
        return False
    session[LAST_SEEN_KEY] = now
    return True


def authenticate_request() -> None:
    """Before any view or body validation: every /api/v1 call but the public ones needs a valid token;
    every dashboard page but sign-in and its static files needs a token or a signed-in session."""
    path = request.path
    if request.method == "OPTIONS":
        # A CORS preflight never carries credentials, and Flask's automatic answer names only the
        # allowed methods: answered alike for any token, it neither fails nor tells a token's validity.
        # A view that answered OPTIONS itself would still authenticate, through caller().
        return
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
        allowed = " or ".join(roles)
        raise Problem(403, "forbidden", f"this needs a {allowed} token; this one is {found.role}")
    return found


def catalog() -> CatalogAt:
    """This process's copies of trials, sites and tokens, as of the versions this request read when it
    authenticated (read now if it did not)."""
    if "catalog" not in g:
        with database().reading() as db_session:
            g.catalog = catalog_at(db_session)
    found: CatalogAt = g.catalog
    return found


def signed_in_caller() -> Caller | None:
    """The caller of this browser's dashboard session; None without one, or once it has ended (signed
    out, idle or too old, token revoked or expired)."""
    token_id, generation = session.get(SESSION_KEY), session.get(GENERATION_KEY)
    if not isinstance(token_id, str) or not isinstance(generation, int) or not _session_lasts():
        return None
    with database().reading() as db_session:
        return caller_of_session(db_session, token_id, generation)


def _session_caller() -> Caller:
    """The caller of a signed-in dashboard session, checked again on every request. Sessions never
    authenticate /api/v1 (no CSRF exposure). An ended session is no guess: it is not counted."""
    found = signed_in_caller()
    if found is None:
        session.clear()
        raise Problem(401, "unauthorized", "sign in with a token, or send Authorization: Bearer <token>")
    return found


NO_TOKEN = "send Authorization: Bearer <token>"  # noqa: S105 - a message, not a secret


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def _authenticated() -> Caller:
    """The bearer token's caller; 401 without a valid token, 429 instead for a presented credential
    that failed when its address has failed too often."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise _unauthorized(NO_TOKEN)  # nothing presented, nothing guessed: not counted
    scheme, _, token = header.partition(" ")
    bearer = scheme.lower() == "bearer" and bool(token.strip())
    if bearer:
        with database().reading() as db_session:
            g.catalog = now = catalog_at(db_session)
            found = now.caller(db_session, token.strip())
        if found is not None:
            return found
    count_failed_authentication()
    raise _unauthorized("the token is unknown, expired or revoked" if bearer else NO_TOKEN)
