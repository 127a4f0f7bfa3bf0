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


@dataclass(frozen=True)
class RateLimits:
    limiter: MovingWindowRateLimiter
    intake_per_token: RateLimitItem
    intake_per_address: RateLimitItem
    auth_failures_per_address: RateLimitItem


def storage_url(settings: Settings) -> str:
    if settings.rate_limit_storage_url:
        return settings.rate_limit_storage_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


def install_rate_limits(app: Flask, settings: Settings) -> None:
    storage = storage_from_string(storage_url(settings), key_prefix="accrual-limits")
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
    limiter = _limits().limiter
    try:
        allowed = limiter.hit(item, scope, key) if count else limiter.test(item, scope, key)
    except Exception as exc:  # the counters' store is away: intake must keep answering, so let it pass
        _store_unavailable(exc)
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
    if response.status_code == 401:
        limits = _limits()
        try:
            limits.limiter.hit(limits.auth_failures_per_address, "auth-failures", _address())
        except Exception as exc:
            _store_unavailable(exc)
    return response


def _store_unavailable(exc: Exception) -> None:
    log.warning("rate limits not enforced: their store is unavailable (%s)", type(exc).__name__)
