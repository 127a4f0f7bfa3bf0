"""Rate limits on intake and on failed authentication, answered with 429 and Retry-After.

Built on `limits` (the library under Flask-Limiter), used directly so the checks sit beside
authentication in the request's path rather than on decorated views. Counters live in Redis when the
broker is Redis (shared by every API process) and in process memory on the embedded defaults.

Failed authentications only ever turn another failed authentication into a 429: many users may share
one address (a NAT, a reverse proxy), so a valid token, a probe or a public page is never refused for
what a guesser from the same address did. Intake is metered after authentication, by token id.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from config import Settings
from services.problems import Problem

INTAKE_PATH = "/api/v1/applications"
log = logging.getLogger(__name__)


# After the store fails, requests skip it this long: each attempt on a stopped Redis costs a connection
# timeout, two per submission, which would turn a broker outage into an intake slowdown.
STORE_RETRY_SECONDS = 5.0
STORE_TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


@dataclass
class RateLimits:
    limiter: MovingWindowRateLimiter
    intake_per_token: RateLimitItem
    intake_per_address: RateLimitItem
    auth_failures_per_address: RateLimitItem
    store_down_until: float = 0.0  # time.monotonic(); per process

    def store_usable(self) -> bool:
        return time.monotonic() >= self.store_down_until

    def store_failed(self, exc: Exception) -> None:
        if self.store_usable():  # once per outage window, not once per request
            log.warning(
                "rate limits not enforced for %.0f s: their store is unavailable (%s)",
                STORE_RETRY_SECONDS,
                type(exc).__name__,
            )
        self.store_down_until = time.monotonic() + STORE_RETRY_SECONDS


def storage_url(settings: Settings) -> str:
    if settings.rate_limit_storage_url:
        return settings.rate_limit_storage_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


def install_rate_limits(app: Flask, settings: Settings) -> None:
    """Build the limiter and its limits once per app; counters live in `storage_url(settings)`."""
    url = storage_url(settings)
    options = STORE_TIMEOUTS if url.startswith(("redis://", "rediss://")) else {}
    storage = storage_from_string(url, key_prefix="accrual-limits", **options)
    app.extensions["accrual.rate_limits"] = RateLimits(
        limiter=MovingWindowRateLimiter(storage),
        intake_per_token=parse(settings.rate_limit_intake_per_token),
        intake_per_address=parse(settings.rate_limit_intake_per_address),
        auth_failures_per_address=parse(settings.rate_limit_auth_failures),
    )


def _limits() -> RateLimits:
    value: RateLimits = current_app.extensions["accrual.rate_limits"]
    return value


def _address() -> str:
    # The socket's peer, or the client a trusted proxy names (ProxyFix, ACCRUAL_TRUSTED_PROXIES).
    return request.remote_addr or "unknown"


def _spend(item: RateLimitItem, scope: str, key: str, what: str) -> None:
    """Spend one of `item` for `key` in `scope`; 429 with Retry-After once it is used up."""
    limits = _limits()
    if not limits.store_usable():
        return
    limiter = limits.limiter
    try:
        allowed = limiter.hit(item, scope, key)
    except Exception as exc:  # the counters' store is away: the service must keep answering
        limits.store_failed(exc)
        return
    if allowed:
        return
    wait = max(1, math.ceil(limiter.get_window_stats(item, scope, key).reset_time - time.time()))
    detail = f"{what}: at most {item}; retry after {wait} s"
    raise Problem(429, "too-many-requests", detail, headers={"Retry-After": str(wait)})


def count_failed_authentication() -> None:
    """Count a presented credential that did not authenticate; 429 instead of the caller's 401 once
    this address has failed too often."""
    limits = _limits()
    what = "too many failed authentications from this address"
    _spend(limits.auth_failures_per_address, "auth-failures", _address(), what)


def meter_intake() -> None:
    """After authentication: submissions are metered per address and per token id, so that neither
    unauthenticated requests nor another spelling of the Authorization header change the count."""
    if request.method != "POST" or request.path != INTAKE_PATH or "caller" not in g:
        return
    limits = _limits()
    what = "too many submissions"
    _spend(limits.intake_per_address, "intake-address", _address(), what)
    _spend(limits.intake_per_token, "intake-token", g.caller.token_id, what)
