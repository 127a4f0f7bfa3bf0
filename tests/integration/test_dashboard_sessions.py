"""Dashboard sessions end on the server at sign-out, and sign-in's `next` never reaches a header raw."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.support.stack import TRIAL, Stack
from tests.support.tokens import sponsor_token

PAGE = f"/dashboard/trials/{TRIAL}"
COOKIE = "accrual_session"


def signed_in(stack: Stack, token: str) -> tuple[FlaskClient, str]:
    """A new browser signed in with `token`, and the value of its session cookie."""
    browser = stack.app.test_client()
    answer = browser.post("/dashboard/login", data={"token": token, "next": PAGE})
    assert answer.status_code == 303 and answer.headers["Location"] == PAGE
    cookie = browser.get_cookie(COOKIE, path="/dashboard")
    assert cookie is not None
    return browser, cookie.value


def replayed(stack: Stack, cookie: str) -> FlaskClient:
    """Another browser presenting a copy of `cookie`."""
    browser = stack.app.test_client()
    browser.set_cookie(COOKIE, cookie, path="/dashboard")
    return browser


def is_signed_in(browser: FlaskClient) -> bool:
    answer = browser.get(PAGE)
    assert answer.status_code in (200, 303), answer.status_code
    if answer.status_code == 303:
        assert answer.headers["Location"].startswith("/dashboard/login")
    return answer.status_code == 200


def test_a_cookie_replayed_after_sign_out_is_refused(stack: Stack) -> None:
    browser, cookie = signed_in(stack, sponsor_token(stack))
    assert is_signed_in(replayed(stack, cookie))  # a copy works while the session lasts
    out = browser.post("/dashboard/logout")
    assert out.status_code == 303 and out.headers["Location"] == "/dashboard/login"
    assert not is_signed_in(browser)
    assert not is_signed_in(replayed(stack, cookie))


def test_signing_out_ends_every_session_of_that_token_only(stack: Stack) -> None:
    token = sponsor_token(stack)
    laptop, _ = signed_in(stack, token)
    phone, _ = signed_in(stack, token)
    colleague, _ = signed_in(stack, stack.admin)
    laptop.post("/dashboard/logout")
    assert not is_signed_in(phone)
    assert is_signed_in(colleague)
    again, _ = signed_in(stack, token)  # the token itself stays valid: signing in again works
    assert is_signed_in(again)


def test_an_ended_sessions_cookie_cannot_sign_out_the_next_session(stack: Stack) -> None:
    token = sponsor_token(stack)
    first, old_cookie = signed_in(stack, token)
    first.post("/dashboard/logout")
    current, _ = signed_in(stack, token)
    stale = replayed(stack, old_cookie)
    assert stale.post("/dashboard/logout").status_code == 303
    assert is_signed_in(current)


def test_signing_out_without_a_session_just_goes_to_sign_in(stack: Stack) -> None:
    out = stack.app.test_client().post("/dashboard/logout")
    assert out.status_code == 303 and out.headers["Location"] == "/dashboard/login"


# --- the sign-in form's `next` --------------------------------------------------------------------

HOSTILE_NEXT = [
    "/dashboard/\r\nSet-Cookie: injected=1",
    "/dashboard/x\nLocation: https://attacker.example/",
    "/dashboard/x\rX: y",
    "/dashboard/\x00x",
    "/dashboard/a\tb",
    "/dashboard/ spaced",
    "/dashboard/../api/v1/trials",
    "/dashboard/%2e%2e/api/v1/trials",
    "/dashboard//attacker.example",
]


def no_injected_header(answer: Any) -> None:
    for name, value in answer.headers.items():
        assert "\r" not in value and "\n" not in value, name
        assert name.lower() not in ("x", "set-cookie") or "injected" not in value, name


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_sign_in_with_a_hostile_next_goes_to_the_dashboard(stack: Stack, target: str) -> None:
    answer = stack.client.post("/dashboard/login", data={"token": stack.admin, "next": target})
    assert answer.status_code == 303 and answer.headers["Location"] == "/dashboard/", answer.status_code
    no_injected_header(answer)
    page = stack.client.get("/dashboard/login", query_string={"next": target})
    assert page.status_code == 200 and 'name="next" value="/dashboard/"' in page.get_data(as_text=True)
    refused = stack.app.test_client().post("/dashboard/login", data={"token": "acr_wrong", "next": target})
    assert refused.status_code == 401


def test_a_next_beyond_latin_1_is_sent_percent_encoded(stack: Stack) -> None:
    answer = stack.client.post("/dashboard/login", data={"token": stack.admin, "next": "/dashboard/trials/€"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/dashboard/trials/%E2%82%AC"


def test_a_plain_dashboard_next_is_kept(stack: Stack) -> None:
    target = f"{PAGE}?week=3"
    answer = stack.client.post("/dashboard/login", data={"token": stack.admin, "next": target})
    assert answer.status_code == 303 and answer.headers["Location"] == target
