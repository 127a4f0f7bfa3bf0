"""Prescreening: one applicant against many trials, synchronously, storing nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Role, Site, Trial, TrialStatus
from services.applications.explanations import Outcome, criteria_view, reasons, remedies_of
from services.errors import InvalidInput
from services.schemas.api import PrescreenResult
from services.tokens import Caller
from services.trials.criteria import compiled_version
from services.trials.queries import registry_id

DECISION_ORDER = {"eligible": 0, "needs_review": 1, "ineligible": 2}


def _recruiting_trials(session: Session, caller: Caller) -> list[Trial]:
    """Trials recruiting at one of the caller's recruiting sites (any recruiting site for an admin)."""
    recruiting = [s.value for s in TrialStatus if s.accepts_applications]
    statement = (
        select(Trial)
        .join(Site, Site.trial_id == Trial.trial_id)
        .where(Trial.overall_status.in_(recruiting), Site.status.in_(recruiting))
        .distinct()
    )
    if caller.role is not Role.ADMIN:
        statement = statement.where(Site.site_id.in_(caller.site_ids))
    return list(session.scalars(statement.order_by(Trial.trial_id)))


def _listed_trials(session: Session, caller: Caller, trial_ids: list[str]) -> list[Trial]:
    trials = []
    for trial_id in dict.fromkeys(registry_id(t) for t in trial_ids):
        trial = session.get(Trial, trial_id)
        if trial is None:
            raise InvalidInput.of("trial_ids", f"no trial {trial_id}")
        trials.append(trial)
    return trials


def prescreen(
    session: Session, caller: Caller, observations: dict[str, object], trial_ids: list[str] | None
) -> list[PrescreenResult]:
    """Decisions for each trial, eligible first, each with its criteria and what stands in the way."""
    trials = _listed_trials(session, caller, trial_ids) if trial_ids else _recruiting_trials(session, caller)
    today = datetime.now(UTC).date()
    results = []
    for trial in trials:
        if trial.current_criteria_version is None:
            continue
        compiled = compiled_version(session, trial.trial_id, trial.current_criteria_version)
        evaluation = compiled.evaluate(observations, today)
        missing = sorted({name for r in evaluation.results if r.outcome == "unknown" for name in r.missing})
        outcomes = [Outcome(r.id, r.kind, r.outcome, r.missing, r.note) for r in evaluation.results]
        found = remedies_of(compiled, observations, today)
        results.append(
            PrescreenResult(
                trial_id=trial.trial_id,
                title=trial.title,
                overall_status=trial.overall_status,  # type: ignore[arg-type]
                decision=evaluation.decision,  # type: ignore[arg-type]
                criteria_version=trial.current_criteria_version,
                deciding=list(evaluation.deciding),
                missing=missing,
                criteria=criteria_view(compiled, outcomes),
                reasons=reasons(compiled, outcomes),
                eligible_from=found.eligible_from,
                renew=list(found.renew),
            )
        )
    return sorted(results, key=lambda r: (DECISION_ORDER[r.decision], r.trial_id))
