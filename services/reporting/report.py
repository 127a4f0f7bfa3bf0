"""The recruitment report: counts, sites, screen failures, weekly series and an accrual forecast.

Everything is read from the counters (services.reporting.counts), which change in the transaction
that changes an application, so the report costs the same for a trial of ten applications as for one of
a million.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ApplicationStatus, Role, Site, Trial
from services.errors import NotFound
from services.randomisation.schemes import allocated_by_arm
from services.reporting.counts import (
    WITHDRAWN_AFTER_ENROLMENT,
    failure_rows,
    status_rows,
    weekly_rows,
    withdrawal_reason,
)
from services.reporting.small_cells import suppress_report
from services.schemas.api import (
    Consort,
    ConsortArm,
    ConsortCount,
    ConsortExcluded,
    ConsortReason,
    Forecast,
    RecruitmentReport,
    ReportSite,
    ScreenFailure,
    WeekCount,
)
from services.tokens import Caller
from services.trials.criteria import compiled_version
from services.trials.queries import visible_trial, visible_trials

# Poisson-gamma accrual model (Anisimov & Fedorov): enrolments arrive as a Poisson process whose rate
# has a Gamma posterior; the Jeffreys-like prior below lets the observed enrolments dominate at once.
PRIOR_SHAPE = 0.5
PRIOR_RATE_WEEKS = 0.001
FORECAST_DRAWS = 4000
FORECAST_HORIZON_WEEKS = 52 * 100
FORECAST_SEED = 20261122  # fixed, so the same counts always give the same forecast


# Reports are for admins and sponsors (the routes check the role), each over the trials it sees
# (services.trials.queries); a coordinator sees its trials, but not the other sites' counts in a report.
REPORT_ROLES = frozenset({Role.ADMIN, Role.SPONSOR})


def visible_report_trial(session: Session, caller: Caller, trial_id: str) -> Trial:
    """The trial, if the caller is an admin or the trial's sponsor; 404 otherwise (existence hidden)."""
    if caller.role not in REPORT_ROLES:
        raise NotFound(f"no trial {trial_id} visible to this token")
    return visible_trial(session, caller, trial_id)


def report_trials(session: Session, caller: Caller) -> list[Trial]:
    """The trials whose reports the caller may see, by registry id."""
    return visible_trials(session, caller) if caller.role in REPORT_ROLES else []


def forecast(
    enrolled: int, target: int | None, first_week: date | None, today: date, rate_scale: float = 1.0
) -> Forecast:
    """Posterior mean rate per week and the date the target is reached: median and 80% interval.

    `rate_scale` multiplies the enrolment rate (a criteria amendment that makes a share more or fewer
    applicants eligible): a Gamma(shape, rate) rate scaled by f is Gamma(shape, rate / f)."""
    if first_week is None or rate_scale <= 0:
        return _without_projection(0.0)
    weeks = max((today - first_week).days / 7, 1.0)
    shape, rate = PRIOR_SHAPE + enrolled, (PRIOR_RATE_WEEKS + weeks) / rate_scale
    mean = shape / rate
    remaining = None if target is None else target - enrolled
    if remaining is None or remaining <= 0 or enrolled == 0:
        return _without_projection(mean)
    draws = random.Random(FORECAST_SEED)  # noqa: S311 - a simulation, not a secret
    times = sorted(
        draws.gammavariate(remaining, 1 / draws.gammavariate(shape, 1 / rate)) for _ in range(FORECAST_DRAWS)
    )
    # A rate near zero puts the target centuries away, past what a date can hold: "not foreseeable".
    weeks_at = [min(times[int(q * (FORECAST_DRAWS - 1))], FORECAST_HORIZON_WEEKS) for q in (0.1, 0.5, 0.9)]
    if weeks_at[1] >= FORECAST_HORIZON_WEEKS:
        return _without_projection(mean)
    at = [today + timedelta(weeks=w) for w in weeks_at]
    return Forecast(
        enrolled_per_week=round(mean, 3),
        projected_target_date=at[1],
        interval_80=[at[0], at[2]],
        model="poisson-gamma",
    )


def _without_projection(mean_rate: float) -> Forecast:
    return Forecast(
        enrolled_per_week=round(mean_rate, 3),
        projected_target_date=None,
        interval_80=None,
        model="poisson-gamma",
    )


@dataclass
class StatusCounts:
    """The trial's applications by status, in total and per site, and the withdrawals after enrolment."""

    total: dict[str, int]
    per_site: dict[str, dict[str, int]]
    withdrawn_after_enrolment: int = 0
    withdrawn_before_enrolment: dict[str, int] = field(default_factory=dict)  # by coded reason


def status_counts(session: Session, trial_id: str) -> StatusCounts:
    """The counters by status; a withdrawal after enrolment stays in `enrolled` (enrolled ever, the place
    is not freed) and is also counted apart."""
    counts = StatusCounts(dict.fromkeys((s.value for s in ApplicationStatus), 0), {})
    for _, site_id, counted, count in status_rows(session, trial_id):
        status = counted
        reason = withdrawal_reason(counted)
        if counted == WITHDRAWN_AFTER_ENROLMENT:
            counts.withdrawn_after_enrolment += count
            status = ApplicationStatus.ENROLLED.value
        elif reason is not None:
            before = counts.withdrawn_before_enrolment
            before[reason] = before.get(reason, 0) + count
            status = ApplicationStatus.WITHDRAWN.value
        counts.total[status] += count
        site = counts.per_site.setdefault(site_id, {})
        site[status] = site.get(status, 0) + count
    return counts


def trial_forecast(session: Session, trial: Trial, rate_scale: float = 1.0) -> Forecast:
    """The trial's forecast from its counters, its enrolment rate scaled by `rate_scale`."""
    weekly = weekly_rows(session, trial.trial_id)
    enrolled = status_counts(session, trial.trial_id).total[ApplicationStatus.ENROLLED]
    first_week = weekly[0][0] if weekly else None
    return forecast(enrolled, trial.enrollment_target, first_week, datetime.now(UTC).date(), rate_scale)


def recruitment_report(
    session: Session, caller: Caller, trial_id: str, threshold: int = 0
) -> RecruitmentReport:
    """The trial's recruitment report, read from the counters; 404 unless the caller may see it. Counts
    below the trial level from 1 to `threshold` - 1 are withheld (services.reporting.small_cells)."""
    trial = visible_report_trial(session, caller, trial_id)
    by_status = status_counts(session, trial.trial_id)
    counts, per_site = by_status.total, by_status.per_site
    sites = session.scalars(select(Site).where(Site.trial_id == trial.trial_id).order_by(Site.name)).all()
    weekly = weekly_rows(session, trial.trial_id)
    failures = failure_rows(session, trial.trial_id)
    texts = {}
    if trial.current_criteria_version is not None:
        texts = {
            c.id: c.text
            for c in compiled_version(session, trial.trial_id, trial.current_criteria_version).criteria
        }
    today = datetime.now(UTC).date()
    report = RecruitmentReport(
        trial_id=trial.trial_id,
        overall_status=trial.overall_status,  # type: ignore[arg-type]
        enrollment_target=trial.enrollment_target,
        applied_count=sum(counts.values()),
        counts=dict[str, int | None](counts),
        sites=[
            ReportSite(
                site_id=s.site_id,
                name=s.name,
                status=s.status,  # type: ignore[arg-type]
                applied_count=sum(per_site.get(s.site_id, {}).values()),
                enrolled_count=per_site.get(s.site_id, {}).get(ApplicationStatus.ENROLLED, 0),
                enrollment_target=s.enrollment_target,
            )
            for s in sites
        ],
        screen_failures=[ScreenFailure(criterion_id=c, text=texts.get(c, ""), count=n) for c, n in failures],
        weekly=[WeekCount(week_start=w, applied=a, enrolled=e) for w, a, e in weekly],
        forecast=forecast(
            counts[ApplicationStatus.ENROLLED],
            trial.enrollment_target,
            weekly[0][0] if weekly else None,
            today,
        ),
        withdrawn_after_enrolment=by_status.withdrawn_after_enrolment,
        consort=consort(by_status, failures, allocated_by_arm(session, trial.trial_id, caller)),
    )
    return suppress_report(report, threshold)


# Where the applicants neither ineligible nor enrolled stand, in the order of the flow.
AWAITING = (
    (ApplicationStatus.SUBMITTED, "awaiting_screening"),
    (ApplicationStatus.NEEDS_REVIEW, "awaiting_review"),
    (ApplicationStatus.ELIGIBLE, "awaiting_enrolment"),
)


def consort(by_status: StatusCounts, failures: list[tuple[str, int]], allocated: list[ConsortArm]) -> Consort:
    """The CONSORT flow from the counters: assessed, excluded (ineligible by criterion; not enrolled by
    coded withdrawal reason or by where they wait), enrolled, allocated (per arm, or the total for a
    blinded caller; nobody in a trial that does not randomise), withdrawn after enrolment."""
    counts = by_status.total
    not_enrolled = [
        ConsortReason(reason=reason, count=n)
        for reason, n in sorted(by_status.withdrawn_before_enrolment.items())
        if n
    ]
    not_enrolled += [
        ConsortReason(reason=name, count=counts[status]) for status, name in AWAITING if counts[status]
    ]
    return Consort(
        assessed=sum(counts.values()),
        excluded=ConsortExcluded(
            ineligible=counts[ApplicationStatus.INELIGIBLE],
            reasons=[ConsortCount(criterion_id=c, count=n) for c, n in failures],
            not_enrolled=not_enrolled,
        ),
        enrolled=counts[ApplicationStatus.ENROLLED],
        allocated=allocated,
        withdrawn_after_enrolment=by_status.withdrawn_after_enrolment,
    )
