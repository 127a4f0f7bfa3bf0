"""Dashboard sessions end on the server at sign-out, after an idle period and after their lifetime, and
sign-in's `next` never reaches a header raw; tokens that are missing, expired or forged get 401."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient

from models import Role
from models.base import utcnow
from services.tokens import create_token
from tests.support.http import assert_problem, auth
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


# --- scenario 37: authentication -------------------------------------------------------------------


def test_s37_missing_expired_or_forged_tokens_get_401_on_the_api_and_the_dashboard(stack: Stack) -> None:
    """Scenario 37, tokens: no token, an expired one, a made-up one, a valid one with a character
    changed, and one sent without its scheme are each refused with 401 problem+json naming the Bearer
    scheme (the dashboard: 401, or sign-in for a browser with nothing); the valid token passes."""
    with stack.db.transaction() as session:
        expired = create_token(session, Role.ADMIN, expires_at=utcnow() - timedelta(seconds=1))
    last = stack.admin[-1]
    forged = stack.admin[:-1] + ("A" if last != "A" else "B")
    for headers in ({}, auth(expired), auth("acr_" + "x" * 43), auth(forged), {"Authorization": stack.admin}):
        for path in ("/api/v1/trials", "/api/v1/webhooks", "/api/v1/events"):
            refused = stack.client.get(path, headers=headers)
            assert_problem(refused, 401)
            assert refused.headers["WWW-Authenticate"] == "Bearer"
        page = stack.client.get(PAGE, headers=headers)
        if headers:  # a presented credential that fails: an error page
            assert page.status_code == 401
        else:  # a browser with nothing: sent to sign in
            assert page.status_code == 303 and page.headers["Location"].startswith("/dashboard/login")
    assert stack.client.get("/api/v1/trials", headers=auth(stack.admin)).status_code == 200


IDLE = timedelta(minutes=30)  # ACCRUAL_SESSION_IDLE_MINUTES' default


def test_s37_an_idle_dashboard_session_ends_and_must_sign_in_again(stack: Stack) -> None:
    """Scenario 37, idle sessions: a session used within ACCRUAL_SESSION_IDLE_MINUTES of its last use
    lasts; one left unused longer is refused (the browser is sent to sign in), and so is any copy of its
    cookie; signing in again works. The clock is simulated (time_machine)."""
    assert stack.settings.session_idle_minutes == IDLE.total_seconds() / 60
    token = sponsor_token(stack)
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        browser, _ = signed_in(stack, token)
        for _ in range(3):  # 87 minutes in all, never idle for 30
            clock.shift(IDLE - timedelta(minutes=1))
            assert is_signed_in(browser)
        cookie = browser.get_cookie(COOKIE, path="/dashboard")
        assert cookie is not None
        clock.shift(IDLE + timedelta(seconds=1))
        assert not is_signed_in(replayed(stack, cookie.value))  # a copy is refused as well
        assert not is_signed_in(browser)
        again, _ = signed_in(stack, token)
        assert is_signed_in(again)


def test_s37_a_dashboard_session_in_use_still_ends_after_session_hours(stack: Stack) -> None:
    """Used every 20 minutes, a session still ends ACCRUAL_SESSION_HOURS after sign-in: the cookie is
    re-signed at every request, so the sign-in time it carries is what bounds it."""
    lifetime = timedelta(hours=stack.settings.session_hours)
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        browser, _ = signed_in(stack, sponsor_token(stack))
        used = timedelta(0)
        while used + timedelta(minutes=20) <= lifetime:
            clock.shift(timedelta(minutes=20))
            used += timedelta(minutes=20)
            assert is_signed_in(browser), used
        cookie = browser.get_cookie(COOKIE, path="/dashboard")
        assert cookie is not None
        clock.shift(lifetime - used + timedelta(seconds=1))
        assert not is_signed_in(replayed(stack, cookie.value))
