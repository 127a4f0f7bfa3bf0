"""A coordinator's requests about one application: its actions and corrections."""

from __future__ import annotations

from typing import Any

from tests.support.stack import Stack


def post(stack: Stack, application_id: str, action: str, body: Any = None, token: str | None = None) -> Any:
    """POST an action (review, enroll, withdraw...) on the application, as its coordinator unless told."""
    return stack.client.post(
        f"/api/v1/applications/{application_id}/{action}",
        json=body,
        headers={"Authorization": f"Bearer {token or stack.coordinator}"},
    )


def patch(
    stack: Stack, application_id: str, applicant: dict[str, Any], token: str | None = None, **headers: str
) -> Any:
    """PATCH corrected observations, as the application's coordinator unless told."""
    return stack.client.patch(
        f"/api/v1/applications/{application_id}",
        json={"applicant": applicant},
        headers={"Authorization": f"Bearer {token or stack.coordinator}", **headers},
    )
