"""An amendment previewed: a draft criteria set run over every application the trial ever screened,
against the current version, storing nothing and announcing nothing.

The applications are read a batch at a time as columns (their observations opened with each row's own
binding, as the mapper would), so a trial of 100,000 applications never holds them all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Application, Trial
from models.application import observations_binding
from models.sealing import keyring_of
from services.eligibility import CompiledCriteria, CriteriaError, Evaluation
from services.errors import InvalidCriteria
from services.reporting.report import trial_forecast
from services.schemas.api import (
    CriteriaPreview,
    CriterionPreview,
    DecisionCounts,
    ForecastPreview,
    SitePreview,
)
from services.trials.criteria import compile_document, compiled_version

BATCH = 2_000


def _screened(session: Session, trial_id: str) -> Iterator[tuple[str, str, dict[str, Any], Any]]:
    """(id, site, observations, submitted_at) of every application of the trial ever screened, a batch
    at a time along the primary key (no server-side cursor: reads run outside a transaction)."""
    keyring = keyring_of(session.get_bind().dialect)
    after = ""
    while True:
        rows = session.execute(
            select(Application.id, Application.site_id, Application.observations, Application.submitted_at)
            .where(
                Application.trial_id == trial_id,
                Application.criteria_version.is_not(None),
                Application.id > after,
            )
            .order_by(Application.id)
            .limit(BATCH)
        ).all()
        for application_id, site_id, sealed, submitted_at in rows:
            observations = keyring.open(sealed, observations_binding(application_id))
            yield application_id, site_id, observations, submitted_at
        if len(rows) < BATCH:
            return
        after = rows[-1][0]


def _excluding(evaluation: Evaluation) -> list[str]:
    return list(evaluation.deciding) if evaluation.decision == "ineligible" else []


class _Tally:
    def __init__(self) -> None:
        self.decisions: Counter[str] = Counter()
        self.per_site: dict[str, Counter[str]] = {}
        self.excluded: Counter[str] = Counter()

    def add(self, site_id: str, evaluation: Evaluation) -> None:
        self.decisions[evaluation.decision] += 1
        self.per_site.setdefault(site_id, Counter())[evaluation.decision] += 1
        self.excluded.update(_excluding(evaluation))


def _counts(counter: Counter[str]) -> DecisionCounts:
    return DecisionCounts(
        eligible=counter.get("eligible", 0),
        ineligible=counter.get("ineligible", 0),
        needs_review=counter.get("needs_review", 0),
    )


def preview_amendment(session: Session, trial: Trial, document: dict[str, Any]) -> CriteriaPreview:
    """How each decision would move if `document` became the criteria: counts before and after, per
    site and per criterion, the applications that would change, and the forecast before and after."""
    try:
        draft = compile_document(document)
    except CriteriaError as exc:
        raise InvalidCriteria(str(exc)) from None
    version = trial.current_criteria_version
    current: CompiledCriteria | None = (
        None if version is None else compiled_version(session, trial.trial_id, version)
    )
    before, after, changed, considered = _Tally(), _Tally(), [], 0
    for application_id, site_id, observations, submitted_at in _screened(session, trial.trial_id):
        considered += 1
        screened_on = submitted_at.date()
        now = draft.evaluate(observations, screened_on)
        after.add(site_id, now)
        if current is not None:
            then = current.evaluate(observations, screened_on)
            before.add(site_id, then)
            if then.decision != now.decision:
                changed.append(application_id)
    # The current version's criteria, then those only the draft has.
    known = current.criteria if current is not None else ()
    criteria = list(dict.fromkeys([*(c.id for c in known), *(c.id for c in draft.criteria)]))
    return CriteriaPreview(
        current_version=version,
        applications_considered=considered,
        before=_counts(before.decisions),
        after=_counts(after.decisions),
        by_site=[
            SitePreview(
                site_id=site,
                before=_counts(before.per_site.get(site, Counter())),
                after=_counts(after.per_site.get(site, Counter())),
            )
            for site in sorted(set(before.per_site) | set(after.per_site))
        ],
        by_criterion=[
            CriterionPreview(
                criterion_id=c, excluded_before=before.excluded[c], excluded_after=after.excluded[c]
            )
            for c in criteria
        ],
        changed=changed,
        forecast=_forecasts(session, trial, before.decisions["eligible"], after.decisions["eligible"]),
    )


def _forecasts(session: Session, trial: Trial, eligible_before: int, eligible_after: int) -> ForecastPreview:
    """The forecast now, and with the enrolment rate scaled by the change in eligible applicants."""
    projected = trial_forecast(session, trial).projected_target_date
    if eligible_before == 0:
        return ForecastPreview(projected_target_date_before=projected, projected_target_date_after=None)
    scaled = trial_forecast(session, trial, eligible_after / eligible_before).projected_target_date
    return ForecastPreview(projected_target_date_before=projected, projected_target_date_after=scaled)
