"""The recruitment counters, their repair and the report, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import delete, update

from models import Application
from models.reporting import CountChange, CountedApplication, ScreenFailureCount, StatusCount, WeeklyCount
from services.reporting.counts import count_application, uncounted
from services.reporting.report import forecast
from services.tokens import Role, create_token
from tests.support.http import assert_problem
from tests.support.reporting import a_lifecycle, count_all, fresh_counts, kept_counts, report
from tests.support.stack import TRIAL, Stack
from workers.maintenance import count_missed


def test_the_counters_equal_a_fresh_count_at_every_step_and_a_recount_changes_nothing(stack: Stack) -> None:
    ids = a_lifecycle(stack)  # a_lifecycle checks the counters after each step
    assert kept_counts(stack) == fresh_counts(stack)
    shuffled = ids * 3
    random.Random(7).shuffle(shuffled)
    count_all(stack, shuffled)  # the repair, repeated in any order
    assert kept_counts(stack) == fresh_counts(stack)
    assert count_application(stack.db, ids[0]) is False  # nothing new to count


def test_the_report_shows_the_counts_sites_failures_and_weeks(stack: Stack) -> None:
    a_lifecycle(stack)
    with stack.db.transaction() as session:
        sponsor = create_token(
            session, Role.SPONSOR, sponsor="allife medical science and technology co., ltd."
        )
    body = report(stack, stack.admin)  # true counts: a sponsor's small ones are withheld (scenario 39)
    assert body["counts"] == {
        "submitted": 1, "eligible": 1, "ineligible": 2, "needs_review": 1, "enrolled": 1, "withdrawn": 1,
    }  # fmt: skip
    assert body["applied_count"] == 7 and body["enrollment_target"] == 27
    assert [(s["applied_count"], s["enrolled_count"]) for s in body["sites"]] == [(7, 1)]
    assert {f["criterion_id"]: f["count"] for f in body["screen_failures"]} == {"I4": 1, "E1": 1}
    assert all(f["text"] for f in body["screen_failures"])
    assert sum(w["applied"] for w in body["weekly"]) == 7 and sum(w["enrolled"] for w in body["weekly"]) == 1
    assert body["forecast"]["model"] == "poisson-gamma" and body["forecast"]["projected_target_date"]
    withheld = report(stack, sponsor)
    assert withheld["counts"] == dict.fromkeys(body["counts"], None) | {"enrolled": 1}
    assert withheld["applied_count"] == 7 and withheld["sites"][0]["applied_count"] == 7  # trial level


def test_the_report_is_for_the_trials_sponsor_and_admins_only(stack: Stack) -> None:
    with stack.db.transaction() as session:
        other = create_token(session, Role.SPONSOR, sponsor="Another Pharma")
    url = f"/api/v1/trials/{TRIAL}/recruitment"
    assert_problem(stack.client.get(url, headers={"Authorization": f"Bearer {other}"}), 404)
    assert_problem(stack.client.get(url, headers={"Authorization": f"Bearer {stack.coordinator}"}), 403)
    assert_problem(stack.client.get(url), 401)


def test_the_forecast_follows_the_observed_rate() -> None:
    today = date(2026, 11, 22)
    ten_weeks_ago = date(2026, 9, 13)
    result = forecast(enrolled=20, target=30, first_week=ten_weeks_ago, today=today)
    assert 1.9 < result.enrolled_per_week < 2.2
    assert result.projected_target_date is not None and result.interval_80 is not None
    weeks_to_go = (result.projected_target_date - today).days / 7
    assert 4 < weeks_to_go < 6.5
    low, high = result.interval_80
    assert low < result.projected_target_date < high
    assert forecast(20, 30, ten_weeks_ago, today) == result  # deterministic
    assert forecast(30, 30, ten_weeks_ago, today).projected_target_date is None
    assert forecast(0, 30, ten_weeks_ago, today).projected_target_date is None
    assert forecast(5, None, ten_weeks_ago, today).projected_target_date is None


def forget_every_count(stack: Stack) -> None:
    """The counters as a release from before them left the database: empty."""
    with stack.db.transaction() as session:
        for model in (CountChange, CountedApplication, StatusCount, WeeklyCount, ScreenFailureCount):
            session.execute(delete(model))


def test_applications_from_before_the_counters_are_counted_by_the_safety_net(stack: Stack) -> None:
    ids = a_lifecycle(stack)
    expected = report(stack, stack.admin)
    forget_every_count(stack)
    assert kept_counts(stack) == {}
    with stack.db.reading() as session:
        missed = set(uncounted(session, limit=100))
    assert missed == set(ids)
    assert count_missed(stack.db) == len(ids)
    assert kept_counts(stack) == fresh_counts(stack)
    assert report(stack, stack.admin) == expected  # weeks, failures and withdrawals as counted live
    assert count_missed(stack.db) == 0  # nothing left, nothing counted twice


def test_a_status_changed_by_hand_in_the_database_is_counted_again(stack: Stack) -> None:
    ids = a_lifecycle(stack)
    with stack.db.transaction() as session:
        session.execute(update(Application).where(Application.id == ids[0]).values(status="needs_review"))
    assert kept_counts(stack) != fresh_counts(stack)
    assert count_missed(stack.db) == 1
    assert kept_counts(stack) == fresh_counts(stack)
