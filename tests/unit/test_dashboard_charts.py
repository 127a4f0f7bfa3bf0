"""The dashboard's chart geometry: axes, gap-free weeks, bars, forecast band, funnel and failures."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.dashboard.charts import (
    CHART_HORIZON,
    TOP_FAILURES,
    Frame,
    consort_diagram,
    continuous_weeks,
    failure_bars,
    forecast_chart,
    funnel,
    nice_ticks,
    projection_withheld,
    weekly_chart,
)
from services.reporting.counts import week_start
from services.schemas.api import (
    Consort,
    ConsortArm,
    ConsortExcluded,
    Forecast,
    ScreenFailure,
    WeekCount,
)

TODAY = date(2026, 11, 22)  # a Sunday; its ISO week starts on Monday 16 November
FRAME = Frame()


def week(day: date, applied: int, enrolled: int = 0) -> WeekCount:
    return WeekCount(week_start=day, applied=applied, enrolled=enrolled)


def points(text: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in text.split())]


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (4, [0, 1, 2, 3, 4]),
        (5, [0, 1, 2, 3, 4, 5]),
        (6, [0, 2, 4, 6]),
        (27, [0, 10, 20, 30]),
        (100, [0, 20, 40, 60, 80, 100]),
        (101, [0, 50, 100, 150]),
        (1_000_000, [0, 200_000, 400_000, 600_000, 800_000, 1_000_000]),
    ],
)
def test_axis_ticks_are_round_and_reach_the_maximum(maximum: int, expected: list[int]) -> None:
    assert nice_ticks(maximum) == expected


def test_weeks_without_applicants_are_drawn_as_zero_up_to_the_current_week() -> None:
    weeks = continuous_weeks([week(date(2026, 11, 2), 3), week(date(2026, 10, 19), 1)], TODAY)
    assert [w.week_start for w in weeks] == [date(2026, 10, 19) + timedelta(weeks=i) for i in range(5)]
    assert [w.applied for w in weeks] == [1, 0, 3, 0, 0]
    assert continuous_weeks([], TODAY) == []


def test_weekly_bars_are_proportional_and_stand_on_the_baseline() -> None:
    chart = weekly_chart([week(date(2026, 11, 9), 4, 1), week(date(2026, 11, 16), 2, 2)], TODAY)
    applied, enrolled = chart.applied, chart.enrolled
    assert [round(bar.height / applied[0].height, 3) for bar in applied] == [1.0, 0.5]
    assert enrolled[0].height == pytest.approx(applied[0].height / 4)
    assert all(bar.y + bar.height == pytest.approx(FRAME.baseline) for bar in applied + enrolled)
    assert all(FRAME.left <= bar.x and bar.x + bar.width <= FRAME.width - FRAME.right for bar in applied)
    assert applied[0].title == "week of 2026-11-09: 4 applied"
    assert [tick.label for tick in chart.y_ticks] == ["0", "1", "2", "3", "4"]
    assert applied[0].width <= 28 and enrolled[0].x == pytest.approx(applied[0].x + applied[0].width)


def test_long_series_get_at_most_eight_date_labels() -> None:
    weeks = [week(date(2025, 1, 6) + timedelta(weeks=i), 1) for i in range(80)]
    chart = weekly_chart(weeks, date(2026, 7, 12))
    assert 1 < len(chart.x_ticks) <= 8 and chart.x_ticks[0].label == "06 Jan 25"


def test_the_forecast_chart_climbs_to_today_then_projects_to_the_target_with_its_band() -> None:
    weeks = [week(date(2026, 10, 5), 4, 1), week(date(2026, 10, 26), 3, 2)]
    projected = Forecast(
        enrolled_per_week=0.4,
        projected_target_date=date(2027, 3, 1),
        interval_80=[date(2027, 1, 10), date(2027, 6, 1)],
        model="poisson-gamma",
    )
    chart = forecast_chart(weeks, enrolled=3, target=10, forecast=projected, today=TODAY)
    observed = points(chart.observed)
    assert observed[0] == (FRAME.left, FRAME.baseline)
    heights = [y for _, y in observed]
    assert heights == sorted(heights, reverse=True)  # cumulative: never falls
    assert observed[-1][0] == pytest.approx(chart.today_x, abs=0.05)
    assert chart.projection is not None and chart.band is not None and chart.target_y is not None
    start, end = points(chart.projection)
    assert start == pytest.approx(observed[-1]) and end[1] == pytest.approx(chart.target_y, abs=0.05)
    band = points(chart.band)
    assert band[1][0] < end[0] < band[2][0]  # the median lies inside its interval
    assert band[2][0] == pytest.approx(
        FRAME.width - FRAME.right, abs=0.05
    )  # the interval's end closes the axis


def test_a_forecast_decades_away_is_drawn_at_the_right_edge() -> None:
    far = Forecast(
        enrolled_per_week=0.01,
        projected_target_date=TODAY + timedelta(days=366 * 40),
        interval_80=[TODAY + timedelta(days=366 * 20), TODAY + timedelta(days=366 * 90)],
        model="poisson-gamma",
    )
    chart = forecast_chart([week(date(2026, 11, 2), 1, 1)], 1, 100, far, TODAY)
    right = FRAME.width - FRAME.right
    assert chart.projection is not None and points(chart.projection)[1][0] == pytest.approx(right, abs=0.05)
    assert chart.today_x < right and CHART_HORIZON.days > 3000


def test_without_a_target_there_is_no_projection_line() -> None:
    none = Forecast(
        enrolled_per_week=0.0, projected_target_date=None, interval_80=None, model="poisson-gamma"
    )
    chart = forecast_chart([], 0, None, none, TODAY)
    assert chart.projection is None and chart.band is None and chart.target_y is None
    assert points(chart.observed) == [(FRAME.left, FRAME.baseline)]


def test_the_funnel_follows_the_statuses() -> None:
    counts = {
        "submitted": 1,
        "eligible": 2,
        "ineligible": 3,
        "needs_review": 1,
        "enrolled": 2,
        "withdrawn": 1,
    }
    steps = funnel(counts)
    assert [(s.label, s.count) for s in steps] == [("Applied", 10), ("Eligible", 4), ("Enrolled", 2)]
    assert [s.share for s in steps] == [1.0, 0.4, 0.2]
    assert "not counted here: 3 found ineligible and 1 waiting for an investigator's review" in steps[1].note
    assert steps[0].note.endswith("1 still wait for screening and 1 withdrew before enrolment")
    assert steps[2].note == "enrolled into the trial; 2 more are eligible and not yet enrolled"
    assert [s.share for s in funnel(dict.fromkeys(counts, 0))] == [0.0, 0.0, 0.0]


def test_failure_bars_keep_the_top_ten_scaled_to_the_largest() -> None:
    failures = [ScreenFailure(criterion_id=f"E{i}", text=f"text {i}", count=30 - i) for i in range(15)]
    bars = failure_bars(failures)
    assert len(bars) == TOP_FAILURES and bars[0].share == 1.0 and bars[-1].share == pytest.approx(21 / 30)
    assert failure_bars([]) == []


def consort_with(allocated: list[ConsortArm]) -> Consort:
    excluded = ConsortExcluded(ineligible=0, reasons=[], not_enrolled=[])
    return Consort(
        assessed=5, excluded=excluded, enrolled=3, allocated=allocated, withdrawn_after_enrolment=0
    )


@pytest.mark.parametrize(
    ("allocated", "lines"),
    [
        (
            [ConsortArm(arm_id="cells", count=2), ConsortArm(arm_id="saline", count=1)],
            ("cells: 2", "saline: 1"),
        ),
        ([ConsortArm(arm_id=None, count=3)], ("all arms (blinded): 3",)),
        ([], ("no randomisation",)),
    ],
)
def test_the_consort_allocated_box_lists_arms_only_when_the_caller_sees_them(
    allocated: list[ConsortArm], lines: tuple[str, ...]
) -> None:
    box = next(box for box in consort_diagram(consort_with(allocated)) if box.key == "allocated")
    assert box.lines == lines and box.count == sum(arm.count for arm in allocated)


@pytest.mark.parametrize(
    ("weeks", "enrolled", "target", "withheld"),
    [
        (1, 5, 27, True),  # five enrolments on one day: no date
        (6, 4, 27, True),  # four in six weeks: still no date
        (4, 5, 27, False),  # five over four weeks: a projection
        (0, 0, 27, True),  # nobody yet
        (1, 1, None, False),  # no target: nothing to project, the page says so
        (1, 27, 27, False),  # target reached
    ],
)
def test_a_projection_needs_five_enrolments_over_four_weeks(
    weeks: int, enrolled: int, target: int | None, withheld: bool
) -> None:
    series = [week(week_start(TODAY) - timedelta(weeks=weeks - 1), 1)] if weeks else []
    reason = projection_withheld(series, enrolled, target, TODAY)
    assert (reason is not None) == withheld
    if reason is not None:
        assert reason.startswith(f"too few data to project a date: {enrolled} enrolled over {weeks} week(s)")


def test_a_date_label_at_the_right_edge_is_anchored_inside_the_chart() -> None:
    # "01 Feb 27" falls on the right edge of a chart that ends on 1 February: centred, it was cut off.
    today = date(2027, 2, 1)
    no_date = Forecast(
        enrolled_per_week=0.5, projected_target_date=None, interval_80=None, model="poisson-gamma"
    )
    chart = forecast_chart([week(date(2027, 1, 4), 2, 1)], 1, 27, no_date, today, FRAME)
    last = chart.x_ticks[-1]
    assert last.label == "01 Feb 27" and last.position == FRAME.width - FRAME.right and last.anchor == "end"
