"""Thin Celery tasks: ids in, one service call."""

from typing import Any

from sqlalchemy.exc import OperationalError

# Every task retries a transient database error (a restart, a lost connection) with growing delays;
# domain outcomes are results, never exceptions, so nothing else is retried.
RETRY_TRANSIENT: dict[str, Any] = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "max_retries": 8,
}
