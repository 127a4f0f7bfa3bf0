"""Failed authentications slow down the guesser, never everyone else behind the same address; and
intake is metered per token however its Authorization header is spelt."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from tests.support.applicants import eligible_applicant
from tests.support.http import auth
from tests.support.stack import TRIAL, Stack, make_settings, sqlite_url

FAILURES_ALLOWED = 3
BAD_TOKEN = "acr_" + "x" * 43
PROXY = "10.0.0.1"  # the reverse proxy every client's request comes through


def limited_settings(request: pytest.FixtureRequest, tmp_path: Path, **overrides: Any) -> Settings:
    """Low limits; counters in process memory on SQLite, in Redis (the broker) on PostgreSQL."""
    limits = {"rate_limit_auth_failures": f"{FAILURES_ALLOWED}/minute", **overrides}
    if request.param == "sqlite":
        return make_settings(tmp_path, sqlite_url(tmp_path), **limits)
    pg, redis = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")
    return make_settings(tmp_path, pg, redis, **limits)


@pytest.fixture(params=["sqlite", "postgres+redis"])
def limited(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    built = Stack(limited_settings(request, tmp_path))
    yield built
    built.close()


@pytest.fixture(params=["sqlite", "postgres+redis"])
def behind_proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    built = Stack(limited_settings(request, tmp_path, trusted_proxies=1))
    yield built
    built.close()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status and body["detail"]
    return body


def assert_locked_out(response: Any) -> None:
    """429 with Retry-After: the answer an address over its failure limit gets for a bad credential."""
    body = problem(response, 429)
    assert body["type"] == "/problems/too-many-requests" and "failed authentications" in body["detail"]
    assert int(response.headers["Retry-After"]) >= 1


def fail_until_locked(stack: Stack, **extra_headers: str) -> None:
    """Use up the address's failed authentications; the next bad token is refused with 429."""
    headers = auth(BAD_TOKEN) | extra_headers
    for _ in range(FAILURES_ALLOWED):
        problem(stack.client.get("/api/v1/trials", headers=headers), 401)
    assert_locked_out(stack.client.get("/api/v1/trials", headers=headers))


def test_a_valid_token_always_passes_from_an_address_that_keeps_failing(limited: Stack) -> None:
    fail_until_locked(limited)
    assert limited.client.get("/api/v1/trials", headers=auth(limited.admin)).status_code == 200
    assert limited.submit(eligible_applicant("VALID")).status_code == 202
    assert limited.client.get("/dashboard/", headers=auth(limited.admin)).status_code == 200
    assert_locked_out(limited.client.get("/api/v1/trials", headers=auth(BAD_TOKEN)))  # still waiting


def test_probes_docs_and_public_pages_are_never_refused_for_failed_authentications(limited: Stack) -> None:
    fail_until_locked(limited)
    for path in ("/healthz", "/readyz", "/metrics", f"/api/v1/public/trials/{TRIAL}", "/openapi.json"):
        assert limited.client.get(path).status_code == 200, path
    assert limited.client.get("/docs").status_code == 302
    sign_in_page = limited.client.get("/dashboard/login?next=/dashboard/")
    assert sign_in_page.status_code == 200 and 'name="token"' in sign_in_page.get_data(as_text=True)
    assert limited.client.get("/dashboard/").status_code == 303  # to sign-in, not refused


def test_dashboard_sign_in_with_a_valid_token_succeeds_and_a_bad_one_counts(limited: Stack) -> None:
    for _ in range(FAILURES_ALLOWED):
        refused = limited.client.post("/dashboard/login", data={"token": BAD_TOKEN, "next": "/dashboard/"})
        assert refused.status_code == 401 and "Set-Cookie" not in refused.headers
    again = limited.client.post("/dashboard/login", data={"token": BAD_TOKEN, "next": "/dashboard/"})
    assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1
    assert "Set-Cookie" not in again.headers
    assert_locked_out(limited.client.get("/api/v1/trials", headers=auth(BAD_TOKEN)))  # one counter
    signed = limited.client.post("/dashboard/login", data={"token": limited.admin, "next": "/dashboard/"})
    assert signed.status_code == 303 and signed.headers["Location"] == "/dashboard/"
    assert limited.client.get("/dashboard/").status_code == 200


def test_preflights_and_requests_without_credentials_are_not_failed_authentications(limited: Stack) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    for _ in range(FAILURES_ALLOWED * 3):
        answer = limited.client.options("/api/v1/applications", headers=preflight)
        assert answer.status_code == 200 and "POST" in answer.headers["Allow"]
        problem(limited.client.get("/api/v1/trials"), 401)  # nothing presented, nothing guessed
    problem(limited.client.get("/api/v1/trials", headers=auth(BAD_TOKEN)), 401)  # the first failure


def test_a_preflight_is_no_token_oracle(limited: Stack) -> None:
    """OPTIONS answers the same with any Authorization: it is never authenticated, so never counted."""
    for token in (limited.admin, BAD_TOKEN):
        answer = limited.client.options("/api/v1/trials", headers=auth(token))
        assert answer.status_code == 200 and answer.get_data() == b""


def test_x_forwarded_for_is_ignored_by_default(limited: Stack) -> None:
    fail_until_locked(limited, **{"X-Forwarded-For": "203.0.113.1"})
    for spoofed in ("203.0.113.2", "198.51.100.7, 203.0.113.3"):
        headers = auth(BAD_TOKEN) | {"X-Forwarded-For": spoofed}
        assert_locked_out(limited.client.get("/api/v1/trials", headers=headers))


def test_behind_a_trusted_proxy_each_client_has_its_own_failure_count(behind_proxy: Stack) -> None:
    def via_proxy(client_address: str, token: str = BAD_TOKEN) -> Any:
        headers = auth(token) | {"X-Forwarded-For": client_address}
        return behind_proxy.client.get("/api/v1/trials", headers=headers, environ_base={"REMOTE_ADDR": PROXY})

    for _ in range(FAILURES_ALLOWED):
        problem(via_proxy("203.0.113.5"), 401)
    assert_locked_out(via_proxy("203.0.113.5"))
    problem(via_proxy("203.0.113.6"), 401)  # another client behind the same proxy
    # The proxy appends the address it saw: an entry the client wrote to the left is not believed.
    assert_locked_out(via_proxy("203.0.113.6, 203.0.113.5"))
    assert via_proxy("203.0.113.5", behind_proxy.admin).status_code == 200


def test_trusted_proxies_must_be_a_small_whole_number(tmp_path: Path) -> None:
    for wrong in (-1, 100):
        with pytest.raises(ValueError, match="trusted_proxies"):
            make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", trusted_proxies=wrong)


# --- intake metering ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres+redis"])
def metered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    built = Stack(
        limited_settings(
            request,
            tmp_path,
            rate_limit_intake_per_token="3/minute",
            rate_limit_intake_per_address="4/minute",
            rate_limit_auth_failures="100/minute",
        )
    )
    yield built
    built.close()


def test_the_intake_limit_is_per_token_however_the_header_is_spelt(metered: Stack) -> None:
    spellings = [f"Bearer {metered.coordinator}", f"bearer {metered.coordinator}"]
    spellings += [f"BEARER {metered.coordinator}", f"Bearer   {metered.coordinator}  "]
    answers = [
        metered.submit(eligible_applicant(f"SPELT{n}"), Authorization=header).status_code
        for n, header in enumerate(spellings)
    ]
    assert answers == [202, 202, 202, 429]


def test_unauthenticated_submissions_spend_no_intake_allowance(metered: Stack) -> None:
    for n in range(6):
        problem(metered.submit(eligible_applicant(f"BAD{n}"), token=BAD_TOKEN), 401)
    answers = [metered.submit(eligible_applicant(f"GOOD{n}")).status_code for n in range(4)]
    assert answers == [202, 202, 202, 429]  # the token's own three, whatever the guesser sent
