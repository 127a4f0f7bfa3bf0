"""The retry policy of webhook deliveries and e-mails (services/notifications/retry.py): pure unit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import services.notifications.retry as retry
from config import Settings
from services.notifications.retry import JITTER, MAX_RETRY_AFTER, next_delay, read_retry_after

# --- the schedule -----------------------------------------------------------------------------------

SCHEDULE = [10.0, 20.0, 30.0]


def test_the_policy_jitters_by_a_fifth_and_waits_at_most_a_day_for_a_retry_after() -> None:
    assert (0.2, timedelta(hours=24)) == (JITTER, MAX_RETRY_AFTER)


@pytest.mark.parametrize(("attempt", "scheduled"), [(1, 10.0), (2, 20.0), (3, 30.0)])
def test_next_delay_is_the_scheduled_delay_jittered_by_at_most_20_percent(
    attempt: int, scheduled: float
) -> None:
    draws = [next_delay(SCHEDULE, attempt) for _ in range(500)]
    seconds = [draw.total_seconds() for draw in draws if draw is not None]
    assert len(seconds) == len(draws)
    assert all(scheduled * (1 - JITTER) <= s <= scheduled * (1 + JITTER) for s in seconds)
    # Jitter is really applied: the draws spread both sides of the scheduled value.
    assert min(seconds) < scheduled < max(seconds)
    assert max(seconds) - min(seconds) > scheduled * JITTER


def test_next_delay_reaches_both_bounds_of_the_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: low)
    assert next_delay(SCHEDULE, 2) == timedelta(seconds=16)
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: high)
    assert next_delay(SCHEDULE, 2) == timedelta(seconds=24)


@pytest.mark.parametrize("attempt", [4, 5, 100])
def test_next_delay_is_none_once_the_schedule_is_spent(attempt: int) -> None:
    assert next_delay(SCHEDULE, attempt) is None
    assert next_delay(SCHEDULE, attempt, timedelta(seconds=5)) is None


def test_an_empty_schedule_gives_no_retry() -> None:
    assert next_delay([], 1) is None


def test_a_zero_delay_retries_at_once() -> None:
    assert next_delay([0.0], 1) == timedelta(0)


def test_next_delay_takes_a_retry_after_longer_than_the_jittered_delay() -> None:
    assert next_delay(SCHEDULE, 1, timedelta(seconds=100)) == timedelta(seconds=100)


def test_next_delay_ignores_a_retry_after_shorter_than_the_jittered_delay() -> None:
    delay = next_delay(SCHEDULE, 2, timedelta(seconds=1))
    assert delay is not None
    assert timedelta(seconds=16) <= delay <= timedelta(seconds=24)


@pytest.mark.parametrize(
    ("variable", "delays_of"),
    [("webhook_retry_schedule", "webhook_delays"), ("mail_retry_schedule", "mail_delays")],
)
def test_both_schedules_are_read_from_the_settings_as_seconds(
    tmp_path: Path, variable: str, delays_of: str
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="x", **{variable: "10, 20,30"})
    delays = getattr(settings, delays_of)
    assert delays == SCHEDULE
    assert next_delay(delays, 3) is not None
    assert next_delay(delays, 4) is None


# --- Retry-After ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", timedelta(0)),
        ("5", timedelta(seconds=5)),
        (" 120 ", timedelta(seconds=120)),
        ("86400", timedelta(hours=24)),
    ],
)
def test_retry_after_reads_delay_seconds(value: str, expected: timedelta) -> None:
    assert read_retry_after(value) == expected


@pytest.mark.parametrize("value", ["86401", "999999", "31536000"])
def test_retry_after_seconds_are_capped_at_max_retry_after(value: str) -> None:
    assert read_retry_after(value) == MAX_RETRY_AFTER


@pytest.mark.parametrize("value", ["-5", "+5", "1_000", "1.5"])
def test_retry_after_that_is_not_plain_digits_or_a_date_is_ignored(value: str) -> None:
    assert read_retry_after(value) is None  # RFC 9110: delay-seconds = 1*DIGIT


def test_retry_after_dates_in_utc_with_an_unknown_zone_are_read() -> None:
    later = read_retry_after("Sun, 06 Nov 2101 08:49:37 -0000")
    assert later == MAX_RETRY_AFTER


@pytest.mark.parametrize("value", [None, ""])
def test_retry_after_absent_gives_none(value: str | None) -> None:
    assert read_retry_after(value) is None


@pytest.mark.parametrize(
    "value", ["soon", "1.5", "   ", "Mon, 99 Xyz 2020 99:99:99 GMT", "in 5 minutes", "5s"]
)
def test_retry_after_garbage_gives_none(value: str) -> None:
    assert read_retry_after(value) is None


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    monkeypatch.setattr(retry, "utcnow", lambda: now)
    return now


def test_retry_after_reads_an_http_date_relative_to_now(frozen_now: datetime) -> None:
    assert read_retry_after("Wed, 21 Oct 2015 07:30:00 GMT") == timedelta(minutes=2)


def test_retry_after_http_date_in_the_past_means_no_wait(frozen_now: datetime) -> None:
    assert read_retry_after("Wed, 21 Oct 2015 07:00:00 GMT") == timedelta(0)


def test_retry_after_http_date_far_ahead_is_capped_at_max_retry_after(frozen_now: datetime) -> None:
    assert read_retry_after("Sat, 24 Oct 2015 07:28:00 GMT") == MAX_RETRY_AFTER


@pytest.mark.parametrize("value", ["100000000000000", "99999999999999999999"])
def test_retry_after_huge_seconds_are_capped_not_raised(value: str) -> None:
    assert read_retry_after(value) == MAX_RETRY_AFTER


def test_a_capped_retry_after_still_lengthens_the_last_scheduled_wait() -> None:
    assert next_delay(SCHEDULE, 3, read_retry_after("999999")) == MAX_RETRY_AFTER
