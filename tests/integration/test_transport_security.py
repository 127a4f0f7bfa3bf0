"""Scenario 40 of RELIABILITY.md §7, transport: with ACCRUAL_ENV=production the settings refuse every
URL or option that would carry data over the network in clear (PostgreSQL without sslmode=require or
stronger, redis:// instead of rediss://, SMTP without TLS, webhooks to plain http:// or private
addresses, a session cookie not marked Secure), and a process started with one says so in one line;
answers served over HTTPS carry Strict-Transport-Security, also behind the trusted proxy.

The webhook-secret half of the scenario (at least 24 random bytes, shown once, sealed, rotatable) is
tests/integration/test_webhook_secret_rotation.py::test_s40_a_rotated_secret_is_random_shown_once_sealed_and_audited.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import Settings
from tests.support.cli import invoke
from tests.support.http import auth
from tests.support.stack import Stack, database_url_for, make_settings

TLS_EVERYWHERE: dict[str, Any] = {
    "env": "production",
    "database_url": "postgresql+psycopg://accrual@db.internal:5432/accrual?sslmode=verify-full",
    "broker_url": "rediss://redis.internal:6380/0?ssl_cert_reqs=required",
    "rate_limit_storage_url": "rediss://redis.internal:6380/1",
    "smtp_host": "smtp.example.org",
    "smtp_security": "starttls",
    "session_cookie_secure": True,
    "secret_key": "production-secret",
}

IN_CLEAR = [
    ({"database_url": "postgresql+psycopg://accrual@db.internal/accrual"}, "ACCRUAL_DATABASE_URL"),
    (
        {"database_url": "postgresql+psycopg://accrual@db.internal/accrual?sslmode=prefer"},
        "ACCRUAL_DATABASE_URL",
    ),
    ({"database_url": "postgresql://accrual@db.internal/accrual?sslmode=disable"}, "ACCRUAL_DATABASE_URL"),
    ({"broker_url": "redis://redis.internal:6379/0"}, "ACCRUAL_BROKER_URL"),
    ({"rate_limit_storage_url": "redis://redis.internal:6379/1"}, "ACCRUAL_RATE_LIMIT_STORAGE_URL"),
    ({"smtp_security": "none"}, "ACCRUAL_SMTP_SECURITY"),
    ({"webhook_allow_private": True}, "ACCRUAL_WEBHOOK_ALLOW_PRIVATE"),
    ({"session_cookie_secure": False}, "ACCRUAL_SESSION_COOKIE_SECURE"),
]


def production(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(data_dir=tmp_path, **{**TLS_EVERYWHERE, **changes})


def test_s40_production_accepts_tls_everywhere_and_embedded_state(tmp_path: Path) -> None:
    assert production(tmp_path).env == "production"
    # A SQLite file and the embedded broker carry nothing over a network; a Unix socket neither.
    production(tmp_path, database_url=f"sqlite:///{tmp_path / 'a.db'}", broker_url="")
    production(tmp_path, database_url="postgresql+psycopg:///accrual?host=/run/postgresql")
    production(tmp_path, smtp_host="", smtp_security="none")  # e-mail off: nothing to send in clear


@pytest.mark.parametrize(("changes", "variable"), IN_CLEAR, ids=[v for _, v in IN_CLEAR])
def test_s40_production_refuses_each_plain_text_transport_naming_its_variable(
    tmp_path: Path, changes: dict[str, Any], variable: str
) -> None:
    with pytest.raises(ValidationError, match=variable):
        production(tmp_path, **changes)
    Settings(data_dir=tmp_path, **{**TLS_EVERYWHERE, **changes, "env": "development"})  # allowed there


def test_s40_a_production_worker_with_a_plain_broker_url_stops_with_one_line(tmp_path: Path) -> None:
    env = {
        "ACCRUAL_ENV": "production",
        "ACCRUAL_DATA_DIR": str(tmp_path),
        "ACCRUAL_BROKER_URL": "redis://127.0.0.1:6379/0",
        "ACCRUAL_SESSION_COOKIE_SECURE": "true",
    }
    result = invoke(env, "worker")
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert "ACCRUAL_ENV=production" in line and "ACCRUAL_BROKER_URL must use TLS" in line
    assert "Traceback" not in result.output


@pytest.fixture(params=["sqlite", "postgres"])
def proxied(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Behind one trusted reverse proxy, the session cookie not marked Secure (so HSTS is not forced)."""
    built = Stack(make_settings(tmp_path, database_url_for(request, tmp_path), trusted_proxies=1))
    yield built
    built.close()


HSTS = "Strict-Transport-Security"


def test_s40_hsts_is_sent_over_https_directly_or_through_the_trusted_proxy(proxied: Stack) -> None:
    client, admin = proxied.client, auth(proxied.admin)
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    for path in ("/api/v1/trials", "/healthz", "/dashboard/login"):
        behind = client.get(path, headers={**admin, **https})
        assert behind.headers[HSTS] == "max-age=31536000; includeSubDomains", path
        direct = client.get(path, headers=admin, base_url="https://accrual.example.org")
        assert HSTS in direct.headers, path
        assert HSTS not in client.get(path, headers=admin).headers, path  # plain http: browsers ignore it


def test_s40_an_untrusted_x_forwarded_proto_earns_no_hsts(tmp_path: Path) -> None:
    stack = Stack(make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}"))  # no trusted proxy
    try:
        forged = stack.client.get(
            "/api/v1/trials", headers={**auth(stack.admin), "X-Forwarded-Proto": "https"}
        )
        assert forged.status_code == 200 and HSTS not in forged.headers
    finally:
        stack.close()
