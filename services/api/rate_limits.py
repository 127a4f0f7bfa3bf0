"""Rate limits on intake and on failed authentication, answered with 429 and Retry-After.

Built on `limits` (the library under Flask-Limiter), used directly so the checks sit beside
authentication in the request's path rather than on decorated views. Counters live in Redis when the
broker is Redis (shared by every API process) and in process memory on the embedded defaults. A
token is never a counter key: its SHA-256 is.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from flask import Flask, Response, current_app, request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from config import Settings
from services.problems import Problem

INTAKE_PATH = "/api/v1/applications"
log = logging.getLogger(__name__)


# After the store fails, requests skip it this long: each attempt on a stopped Redis costs a connection
# timeout, three per request, which would turn a broker outage into an intake slowdown.
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
    url = storage_url(settings)
    options = STORE_TIMEOUTS if url.startswith(("redis://", "rediss://")) else {}
    storage = storage_from_string(url, key_prefix="accrual-limits", **options)
    app.extensions["accrual.rate_limits"] = RateLimits(
        limiter=MovingWindowRateLimiter(storage),
        intake_per_token=parse(settings.rate_limit_intake_per_token),
        intake_per_address=parse(settings.rate_limit_intake_per_address),
        auth_failures_per_address=parse(settings.rate_limit_auth_failures),
    )
    app.after_request(count_auth_failure)


def _limits() -> RateLimits:
    value: RateLimits = current_app.extensions["accrual.rate_limits"]
    return value


def _address() -> str:
    return request.remote_addr or "unknown"


def _token_key() -> str:
    return hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()[:32]


def _enforce(item: RateLimitItem, scope: str, key: str, what: str, *, count: bool) -> None:
    """429 once `key` has used up `item` in `scope`; `count` spends one of it on this request."""
    limits = _limits()
    if not limits.store_usable():
        return
    limiter = limits.limiter
    try:
        allowed = limiter.hit(item, scope, key) if count else limiter.test(item, scope, key)
    except Exception as exc:  # the counters' store is away: intake must keep answering, so let it pass
        limits.store_failed(exc)
        return
    if allowed:
        return
    wait = max(1, math.ceil(limiter.get_window_stats(item, scope, key).reset_time - time.time()))
    detail = f"{what}: at most {item}; retry after {wait} s"
    raise Problem(429, "too-many-requests", detail, headers={"Retry-After": str(wait)})


def check_rate_limits() -> None:
    """Before authentication: an address that keeps failing it waits; intake is metered per address
    and per token."""
    limits, address = _limits(), _address()
    failed = "too many failed authentications"
    _enforce(limits.auth_failures_per_address, "auth-failures", address, failed, count=False)
    if request.method == "POST" and request.path == INTAKE_PATH:
        _enforce(limits.intake_per_address, "intake-address", address, "too many submissions", count=True)
        _enforce(limits.intake_per_token, "intake-token", _token_key(), "too many submissions", count=True)


def count_auth_failure(response: Response) -> Response:
    limits = _limits()
    if response.status_code == 401 and limits.store_usable():
        try:
            limits.limiter.hit(limits.auth_failures_per_address, "auth-failures", _address())
        except Exception as exc:
            limits.store_failed(exc)
    return response
