"""When a failed send is tried again: webhook deliveries and e-mails follow the same policy.

Attempt n waits the n-th delay of its schedule (ACCRUAL_WEBHOOK_RETRY_SCHEDULE, ACCRUAL_MAIL_RETRY_SCHEDULE),
jittered by up to 20% either way so that sends failed together do not come back together; once the
schedule is spent there is no next attempt. A receiver's Retry-After can lengthen a wait, never shorten
it, and is capped so that a receiver cannot park a send for ever.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime

from models.base import utcnow

JITTER = 0.2
MAX_RETRY_AFTER = timedelta(hours=24)


def next_delay(
    delays: Sequence[float], attempts: int, retry_after: timedelta | None = None
) -> timedelta | None:
    """The wait after the `attempts`-th failed attempt (counted from 1); None once the schedule is spent."""
    if attempts > len(delays):
        return None
    delay = timedelta(seconds=delays[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER))  # noqa: S311
    return max(delay, retry_after) if retry_after is not None else delay


def read_retry_after(value: str | None) -> timedelta | None:
    """A Retry-After header as seconds or an HTTP date, capped; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():  # RFC 9110: delay-seconds = 1*DIGIT, so no sign, no fraction
        return timedelta(seconds=min(int(text), int(MAX_RETRY_AFTER.total_seconds())))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    if moment.tzinfo is None:  # "-0000": a time in UTC whose zone the sender did not know
        moment = moment.replace(tzinfo=UTC)
    return min(max(moment - utcnow(), timedelta(0)), MAX_RETRY_AFTER)
