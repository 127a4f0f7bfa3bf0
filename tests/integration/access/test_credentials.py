"""Every protected /api/v1 route answers 401 (problem+json, WWW-Authenticate: Bearer) to a missing,
malformed, unknown, revoked or expired token, before its body or query is looked at; on SQLite and
PostgreSQL."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from models import ApiToken, Role
from services.tokens import create_token
from tests.support.access.matrix import EXPECTED_PROTECTED_ROUTES
from tests.support.access.routes import fill, protected_routes
from tests.support.access.world import ADMIN, SPONSOR, World
from tests.support.applicants import eligible_applicant
from tests.support.stack import TRIAL, Stack

PROBLEM_JSON = "application/problem+json"

BAD_CREDENTIALS = {
    "no header": {},
    "basic scheme": {"Authorization": "Basic x"},
    "empty bearer": {"Authorization": "Bearer "},
    "bearer without token": {"Authorization": "Bearer"},
    "not an acr token": {"Authorization": "Bearer hello"},
    "unknown acr token": {"Authorization": "Bearer acr_" + secrets.token_urlsafe(32)},
}
# Bodies that would each fail in their own way (malformed, wrong type, invalid) if they were looked at.
BAD_BODIES: dict[str, dict[str, Any]] = {
    "no body": {},
    "malformed json": {"data": b'{"trial_id": ', "content_type": "application/json"},
    "not json": {"data": b"trial_id=x", "content_type": "text/plain"},
    "invalid json": {"json": {"unexpected": [1, 2, 3]}},
}


def assert_unauthorized(response: Any) -> None:
    """A 401 problem+json that asks for a Bearer token."""
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM_JSON
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    body = response.get_json()
    assert body["status"] == 401 and body["detail"]


def test_every_protected_route_answers_401_before_looking_at_the_request(world: World) -> None:
    failures: list[str] = []
    walked = 0
    for method, rule in protected_routes(world.stack):
        walked += 1
        path = fill(rule, world.ids)
        bodies = BAD_BODIES if method in ("POST", "PUT", "PATCH") else {"no body": {}, "bad query": {}}
        for credential, headers in BAD_CREDENTIALS.items():
            for body_name, body in bodies.items():
                target = path + (
                    "?limit=-5&status=bogus&cursor=%%%&after=x" if body_name == "bad query" else ""
                )
                response = world.stack.client.open(target, method=method, headers=headers, **body)
                try:
                    assert_unauthorized(response)
                except AssertionError as exc:
                    failures.append(
                        f"{method} {rule} [{credential}, {body_name}]: {str(exc).splitlines()[0]}"
                    )
    assert walked == EXPECTED_PROTECTED_ROUTES
    assert failures == []
    # A body over the size limit is refused for want of a token too, before it is read.
    oversized = b"x" * (world.stack.settings.max_body_bytes + 1)
    for method, rule in protected_routes(world.stack):
        if method in ("POST", "PUT", "PATCH"):
            response = world.stack.client.open(
                fill(rule, world.ids), method=method, data=oversized, content_type="application/json"
            )
            assert_unauthorized(response)
    # Not even whether a path or a method exists is told before the token is checked.
    for method, path in (
        ("GET", "/api/v1/no-such-thing"),
        ("DELETE", "/api/v1/trials"),
        ("PUT", "/api/v1/events"),
    ):
        assert_unauthorized(world.stack.client.open(path, method=method))


def test_a_dashboard_session_or_cookie_is_no_token_for_the_api(world: World) -> None:
    client = world.stack.app.test_client()
    signed = client.post("/dashboard/login", data={"token": world.tokens[ADMIN], "next": "/dashboard/"})
    assert signed.status_code == 303
    assert client.get("/dashboard/").status_code == 200
    for method, rule in protected_routes(world.stack):
        assert_unauthorized(client.open(fill(rule, world.ids), method=method))


def test_a_revoked_or_expired_token_is_refused_on_its_next_request(stack: Stack) -> None:
    with stack.db.transaction() as session:
        revoked = create_token(session, Role.SPONSOR, sponsor=SPONSOR, name="to-revoke")
        expired = create_token(
            session, Role.COORDINATOR, [stack.site_id], expires_at=datetime.now(UTC) - timedelta(minutes=1)
        )
    auth = {"Authorization": f"Bearer {revoked}"}
    report = f"/api/v1/trials/{TRIAL}/recruitment"
    assert stack.client.get(report, headers=auth).status_code == 200
    with stack.db.transaction() as session:
        session.execute(
            update(ApiToken).where(ApiToken.name == "to-revoke").values(revoked_at=datetime.now(UTC))
        )
    assert_unauthorized(stack.client.get(report, headers=auth))
    assert_unauthorized(stack.client.post("/api/v1/webhooks", headers=auth, json={}))
    assert_unauthorized(stack.client.get("/api/v1/trials", headers={"Authorization": f"Bearer {expired}"}))
    assert_unauthorized(stack.submit(eligible_applicant(), token=expired))
    assert stack.client.get(report, headers={"Authorization": f"Bearer {stack.admin}"}).status_code == 200
