"""Requests and answers over the HTTP API: the bearer header and the problem+json shape."""

from __future__ import annotations

from typing import Any


def auth(token: str) -> dict[str, str]:
    """The Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """`response` is a problem+json answer with `status` (naming `field` among its errors); its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status and body["type"].startswith("/problems/") and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body
