"""Chart geometry for the dashboard: pure functions from the report's figures to SVG coordinates.

The charts are drawn on the server as inline SVG, so the page needs no script, no charting library
and no build step, and works under a Content-Security-Policy that forbids scripts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.reporting.counts import week_start
from services.schemas.api import Consort, Forecast, ScreenFailure, WeekCount

MAX_X_LABELS = 8
MAX_BAR_WIDTH = 28.0
TOP_FAILURES = 10
CHART_HORIZON = timedelta(days=366 * 10)
# A count withheld by small-cell suppression (services.reporting.small_cells), as the page says it.
WITHHELD = "withheld"


@dataclass(frozen=True)
class Frame:
    """The drawing area of one chart, in SVG user units, with margins for the axes' labels."""

    width: int = 720
    height: int = 240
    left: int = 44
    right: int = 16
    top: int = 12
    bottom: int = 36

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    @property
    def baseline(self) -> float:
        return self.top + self.plot_height

    def y(self, value: float, top_value: float) -> float:
        return self.baseline - self.plot_height * value / top_value


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    anchor: str = "middle"  # SVG text-anchor: a label at either edge is anchored inside the chart


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class WeeklyChart:
    frame: Frame
    applied: list[Rect]
    enrolled: list[Rect]
    x_ticks: list[Tick]
    y_ticks: list[Tick]


@dataclass(frozen=True)
class ForecastChart:
    frame: Frame
    observed: str
    projection: str | None
    band: str | None
    target_y: float | None
    today_x: float
    x_ticks: list[Tick]
    y_ticks: list[Tick]


@dataclass(frozen=True)
class FunnelStep:
    label: str
    count: int | None  # None: withheld (small-cell suppression)
    share: float
    note: str


@dataclass(frozen=True)
class FailureBar:
    criterion_id: str
    text: str
    count: int | None
    share: float


def nice_ticks(maximum: float, wanted: int = 5) -> list[int]:
    """Round axis values from 0 to at least `maximum`: steps of 1, 2 or 5 times a power of ten."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / wanted
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    top = step * math.ceil(maximum / step)
    return list(range(0, int(top) + 1, int(step)))


def continuous_weeks(weeks: Sequence[WeekCount], today: date) -> list[WeekCount]:
    """Every week from the first with an applicant to the current one; weeks without any count as 0."""
    if not weeks:
        return []
    known = {w.week_start: w for w in weeks}
    first, last = min(known), max(max(known), week_start(today))
    span = (last - first).days // 7 + 1
    return [
        known.get(day, WeekCount(week_start=day, applied=0, enrolled=0))
        for day in (first + timedelta(weeks=i) for i in range(span))
    ]


# Half a date label's width ("01 Feb 27" at the axis' font size): closer to an edge, it would be cut.
HALF_LABEL = 30


def _x_labels(positions: Sequence[tuple[float, date]], frame: Frame) -> list[Tick]:
    every = max(1, math.ceil(len(positions) / MAX_X_LABELS))
    ticks = []
    for x, day in positions[::every]:
        anchor = "end" if x > frame.width - HALF_LABEL else "start" if x < HALF_LABEL else "middle"
        ticks.append(Tick(x, day.strftime("%d %b %y"), anchor))
    return ticks


def _y_labels(frame: Frame, ticks: Sequence[int]) -> list[Tick]:
    return [Tick(frame.y(value, ticks[-1]), str(value)) for value in ticks]


def weekly_chart(weeks: Sequence[WeekCount], today: date, frame: Frame | None = None) -> WeeklyChart:
    """Applied and enrolled per week as side-by-side bars."""
    frame = frame or Frame()
    series = continuous_weeks(weeks, today)
    ticks = nice_ticks(max((max(w.applied or 0, w.enrolled or 0) for w in series), default=0))
    slot = frame.plot_width / max(len(series), 1)
    bar = min(slot * 0.42, MAX_BAR_WIDTH)  # a young trial's few weeks would otherwise fill the chart
    applied: list[Rect] = []
    enrolled: list[Rect] = []
    labels: list[tuple[float, date]] = []
    for index, week in enumerate(series):
        x = frame.left + index * slot + (slot - 2 * bar) / 2
        day = week.week_start.isoformat()
        for value, bars, offset, what in (
            (week.applied, applied, 0.0, "applied"),
            (week.enrolled, enrolled, bar, "enrolled"),
        ):
            # A withheld count is drawn as no bar, and its title says it is withheld, not zero.
            top = frame.y(value or 0, ticks[-1])
            said = f"{value} {what}" if value is not None else f"{what} withheld (small cell)"
            bars.append(Rect(x + offset, top, bar, frame.baseline - top, f"week of {day}: {said}"))
        labels.append((x + bar, week.week_start))
    return WeeklyChart(frame, applied, enrolled, _x_labels(labels, frame), _y_labels(frame, ticks))


def _points(points: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def forecast_chart(
    weeks: Sequence[WeekCount],
    enrolled: int,
    target: int | None,
    forecast: Forecast,
    today: date,
    frame: Frame | None = None,
) -> ForecastChart:
    """Cumulative enrolment to date, then the projection to the target with its 80% interval."""
    frame = frame or Frame()
    series = continuous_weeks(weeks, today)
    start = series[0].week_start if series else week_start(today)
    horizon = [today, start + timedelta(days=7)]
    if forecast.projected_target_date is not None:
        horizon.append(forecast.projected_target_date)
    if forecast.interval_80 is not None:
        horizon.append(forecast.interval_80[1])
    end = min(max(horizon), today + CHART_HORIZON)
    days = (end - start).days
    ticks = nice_ticks(max(target or 0, enrolled))

    def x(day: date) -> float:
        """Dates past the chart's horizon (a forecast decades away) are drawn at its right edge."""
        return frame.left + frame.plot_width * (min(day, end) - start).days / days

    def y(value: float) -> float:
        return frame.y(value, ticks[-1])

    cumulative, observed = 0, [(x(start), y(0))]
    for week in series:
        if week.enrolled is None:
            # From a withheld week on, only the total is known: the line goes straight to it.
            observed.append((x(today), y(enrolled)))
            break
        cumulative += week.enrolled
        observed.append((x(min(week.week_start + timedelta(days=7), today)), y(cumulative)))
    projection = band = None
    if target is not None and forecast.projected_target_date is not None:
        projection = _points([(x(today), y(enrolled)), (x(forecast.projected_target_date), y(target))])
    if target is not None and forecast.interval_80 is not None:
        low, high = forecast.interval_80
        band = _points([(x(today), y(enrolled)), (x(low), y(target)), (x(high), y(target))])
    month_starts = [start + timedelta(days=d) for d in range(days + 1)]
    months = [(x(day), day) for day in month_starts if day.day == 1] or [(x(start), start)]
    return ForecastChart(
        frame=frame,
        observed=_points(observed),
        projection=projection,
        band=band,
        target_y=None if target is None else y(target),
        today_x=x(today),
        x_ticks=_x_labels(months, frame),
        y_ticks=_y_labels(frame, ticks),
    )


# A projection from fewer enrolments, or fewer weeks, is a guess drawn as a date: say so instead.
MIN_ENROLLED_TO_PROJECT = 5
MIN_WEEKS_TO_PROJECT = 4


def projection_withheld(
    weeks: Sequence[WeekCount], enrolled: int, target: int | None, today: date
) -> str | None:
    """Why no date is projected for the target, or None when the data allow one."""
    if target is None or enrolled >= target:
        return None  # no target, or reached: nothing to project, the page says which
    observed = len(continuous_weeks(weeks, today))
    if enrolled >= MIN_ENROLLED_TO_PROJECT and observed >= MIN_WEEKS_TO_PROJECT:
        return None
    return (
        f"too few data to project a date: {enrolled} enrolled over {observed} week(s); a projection needs "
        f"at least {MIN_ENROLLED_TO_PROJECT} enrolments over {MIN_WEEKS_TO_PROJECT} weeks"
    )


def funnel(counts: Mapping[str, int | None], applied: int | None = None) -> list[FunnelStep]:
    """Applied -> found eligible -> enrolled, each with what fell out at that step. The eligible step is
    withheld with the eligible count: it is that count plus the enrolled. `applied` is the trial's total
    (the sum of the counts when none is withheld)."""
    if applied is None:
        applied = sum(n or 0 for n in counts.values())
    eligible = counts.get("eligible", 0)
    enrolled = counts.get("enrolled", 0) or 0
    passed = None if eligible is None else eligible + enrolled
    steps = [
        (
            "Applied",
            applied,
            f"every applicant submitted; of them, {_shown(counts.get('submitted', 0))} still wait for "
            f"screening and {_shown(counts.get('withdrawn', 0))} withdrew before enrolment",
        ),
        (
            "Eligible",
            passed,
            f"found eligible by screening or an investigator (the enrolled among them); not counted here: "
            f"{_shown(counts.get('ineligible', 0))} found ineligible and "
            f"{_shown(counts.get('needs_review', 0))} waiting for an investigator's review",
        ),
        (
            "Enrolled",
            enrolled,
            f"enrolled into the trial; {_shown(eligible)} more are eligible and not yet enrolled",
        ),
    ]
    return [FunnelStep(label, n, (n or 0) / applied if applied else 0.0, note) for label, n, note in steps]


def failure_bars(failures: Sequence[ScreenFailure]) -> list[FailureBar]:
    """The criteria that excluded the most applicants, longest bar first."""
    top = list(failures)[:TOP_FAILURES]
    most = max((f.count or 0 for f in top), default=0)
    return [FailureBar(f.criterion_id, f.text, f.count, (f.count or 0) / most if most else 0.0) for f in top]


@dataclass(frozen=True)
class ConsortBox:
    key: str  # the data-testid suffix
    title: str
    count: int | None
    lines: tuple[str, ...]  # the breakdown under the title
    x: float
    y: float
    width: float

    @property
    def height(self) -> float:
        return CONSORT_LINE * (2 + len(self.lines)) + 8


CONSORT_LINE = 18
TOP_EXCLUSIONS = 3
REASON_LABELS = {
    "declined": "declined", "not_reachable": "not reachable", "consent_withdrawn": "consent withdrawn",
    "investigator_decision": "investigator's decision", "other": "other reasons",
    "awaiting_screening": "awaiting screening", "awaiting_review": "awaiting review",
    "awaiting_enrolment": "eligible, awaiting enrolment",
}  # fmt: skip


def consort_diagram(consort: Consort) -> list[ConsortBox]:
    """The CONSORT flow as boxes: the main column (assessed, enrolled, allocated, withdrawn after
    enrolment) and, beside the step from assessed to enrolled, the excluded with their reasons."""
    excluded = consort.excluded
    lines = [f"ineligible: {_shown(excluded.ineligible)}"]
    lines += [f"  excluded by {c.criterion_id}: {_shown(c.count)}" for c in excluded.reasons[:TOP_EXCLUSIONS]]
    lines += [f"{REASON_LABELS.get(r.reason, r.reason)}: {_shown(r.count)}" for r in excluded.not_enrolled]
    allocated = sum(arm.count or 0 for arm in consort.allocated)  # the arms' total is the trial's
    # Per arm for those who may see arms; a blinded caller gets the total as one line.
    arms = [f"{arm.arm_id or 'all arms (blinded)'}: {_shown(arm.count)}" for arm in consort.allocated]
    column = [
        ("assessed", "Assessed for eligibility", consort.assessed, ()),
        ("enrolled", "Enrolled", consort.enrolled, ()),
        ("allocated", "Allocated", allocated, tuple(arms or ["no randomisation"])),
        ("withdrawn", "Withdrawn after enrolment", consort.withdrawn_after_enrolment, ()),
    ]
    boxes, y = [], 4.0
    for index, (key, title, count, its_lines) in enumerate(column):
        box = ConsortBox(key, title, count, its_lines, 4, y, 300)
        boxes.append(box)
        y += box.height + (max(70.0, 24 + CONSORT_LINE * (2 + len(lines)) - box.height) if index == 0 else 40)
    boxes.append(
        # The excluded are the assessed less the enrolled, both trial-level: shown whatever is withheld.
        ConsortBox("excluded", "Excluded", consort.assessed - consort.enrolled, tuple(lines), 380, 40, 336)
    )
    return boxes


def _shown(count: int | None) -> str:
    return WITHHELD if count is None else str(count)


def consort_height(boxes: Sequence[ConsortBox]) -> float:
    return max(box.y + box.height for box in boxes) + 4
