"""The report's tables as CSV (one file per table), as the dashboard offers them for download.

Every cell that a spreadsheet would read as a formula (=, +, -, @, tab, carriage return first) is
prefixed with a quote: a criterion's text or a site's name comes from outside (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from services.schemas.api import RecruitmentReport

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _sites(report: RecruitmentReport) -> Iterable[Sequence[Any]]:
    yield ("site_id", "name", "status", "applied", "enrolled", "enrollment_target")
    for site in report.sites:
        yield (
            site.site_id,
            site.name,
            site.status,
            site.applied_count,
            site.enrolled_count,
            site.enrollment_target,
        )


def _weekly(report: RecruitmentReport) -> Iterable[Sequence[Any]]:
    yield ("week_start", "applied", "enrolled")
    for week in report.weekly:
        yield (week.week_start.isoformat(), week.applied, week.enrolled)


def _screen_failures(report: RecruitmentReport) -> Iterable[Sequence[Any]]:
    yield ("criterion_id", "text", "excluded")
    for failure in report.screen_failures:
        yield (failure.criterion_id, failure.text, failure.count)


def _statuses(report: RecruitmentReport) -> Iterable[Sequence[Any]]:
    yield ("status", "applications")
    yield from report.counts.items()


def _consort(report: RecruitmentReport) -> Iterable[Sequence[Any]]:
    """The CONSORT flow as rows: step, detail, count."""
    consort = report.consort
    yield ("step", "detail", "count")
    yield ("assessed", "", consort.assessed)
    yield ("excluded", "ineligible", consort.excluded.ineligible)
    for excluded in consort.excluded.reasons:
        yield ("excluded", f"ineligible by {excluded.criterion_id}", excluded.count)
    for waiting in consort.excluded.not_enrolled:
        yield ("excluded", f"not enrolled: {waiting.reason}", waiting.count)
    yield ("enrolled", "", consort.enrolled)
    for arm in consort.allocated:
        yield ("allocated", arm.arm_id or "all arms (blinded)", arm.count)
    yield ("withdrawn after enrolment", "", consort.withdrawn_after_enrolment)


TABLES: dict[str, Callable[[RecruitmentReport], Iterable[Sequence[Any]]]] = {
    "sites": _sites,
    "weekly": _weekly,
    "screen-failures": _screen_failures,
    "statuses": _statuses,
    "consort": _consort,
}


def csv_of(report: RecruitmentReport, table: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([_cell(value) for value in row] for row in TABLES[table](report))
    return out.getvalue()
