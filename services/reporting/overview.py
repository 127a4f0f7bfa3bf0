"""What the dashboard's first page shows each role: a sponsor or admin their trials side by side, a
coordinator their own sites, the applications waiting for them and their latest decisions. From the
counters, like the report; a coordinator's page holds nothing of another site."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Application, ApplicationStatus, Site, Trial
from services.applications.worklist import worklist
from services.reporting.report import report_trials, status_counts
from services.schemas.api import WorkItemOut, WorklistQuery
from services.tokens import Caller

RECENT_DECISIONS = 10


@dataclass(frozen=True)
class TrialRow:
    trial_id: str
    title: str
    status: str
    applied: int
    enrolled: int
    target: int | None

    @property
    def progress(self) -> float | None:
        """Enrolled as a share of the target, at most 1; None without a target."""
        return None if not self.target else min(1.0, self.enrolled / self.target)


def trial_rows(session: Session, caller: Caller) -> list[TrialRow]:
    """The trials whose reports the caller sees, each with its applied and enrolled counts."""
    rows = []
    for trial in report_trials(session, caller):
        total = status_counts(session, trial.trial_id).total
        rows.append(
            TrialRow(
                trial.trial_id,
                trial.title,
                trial.overall_status,
                sum(total.values()),
                total[ApplicationStatus.ENROLLED],
                trial.enrollment_target,
            )
        )
    return rows


@dataclass(frozen=True)
class SiteRow:
    trial_id: str
    trial_title: str
    site_id: str
    name: str
    status: str
    applied: int
    enrolled: int
    target: int | None


@dataclass(frozen=True)
class Decision:
    application_id: str
    trial_id: str
    site_id: str
    screening_id: str
    status: str
    decision: str | None
    decided_at: datetime


@dataclass(frozen=True)
class CoordinatorOverview:
    sites: list[SiteRow]
    waiting: list[WorkItemOut]
    recent: list[Decision]


def coordinator_overview(session: Session, caller: Caller) -> CoordinatorOverview:
    """The caller's sites with their counts, its applications needing review (most valuable first),
    and its latest decisions."""
    sites = session.execute(
        select(Site, Trial)
        .join(Trial, Trial.trial_id == Site.trial_id)
        .where(Site.site_id.in_(caller.site_ids))
        .order_by(Trial.trial_id, Site.name)
    ).all()
    per_trial = {trial.trial_id: status_counts(session, trial.trial_id).per_site for _, trial in sites}
    rows = []
    for site, trial in sites:
        counts = per_trial[trial.trial_id].get(site.site_id, {})
        rows.append(
            SiteRow(
                trial.trial_id,
                trial.title,
                site.site_id,
                site.name,
                site.status,
                sum(counts.values()),
                counts.get(ApplicationStatus.ENROLLED, 0),
                site.enrollment_target,
            )
        )
    decided = session.scalars(
        select(Application)
        .where(Application.site_id.in_(caller.site_ids), Application.decided_at.is_not(None))
        .order_by(Application.decided_at.desc(), Application.id.desc())
        .limit(RECENT_DECISIONS)
    )
    recent = [
        Decision(a.id, a.trial_id, a.site_id, a.screening_id, a.status, a.decision, a.decided_at)
        for a in decided
        if a.decided_at is not None
    ]
    return CoordinatorOverview(rows, worklist(session, caller, WorklistQuery()), recent)
