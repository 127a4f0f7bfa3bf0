"""Reading trials, their sites and current criteria, with applied and enrolled counts.

Contract v1.1: a caller sees the trials visible to it, all for an admin, a sponsor's own trials, the
trials of a coordinator's sites; any other trial reads as absent (404). Whoever sees a trial sees all
of its sites and its criteria. The public summary (`public_trial`) is for anyone.
"""

from __future__ import annotations

from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import Application, ApplicationHistory, ApplicationStatus, Role, Site, Trial
from services.errors import NotFound
from services.schemas.api import (
    CriteriaOut,
    CriterionSpecOut,
    PublicTrial,
    SiteOut,
    TrialOut,
    TrialRegistryFields,
)
from services.tokens import Caller
from services.trials.criteria import current_document


def _counts(
    session: Session, column: InstrumentedAttribute[str], ids: list[str]
) -> dict[str, tuple[int, int]]:
    """(applied, enrolled) per trial or site id; applied counts each applicant once, whatever its status,
    enrolled each participant ever enrolled (a withdrawal after enrolment frees no place)."""
    was_enrolled = exists().where(
        ApplicationHistory.application_id == Application.id,
        ApplicationHistory.status == ApplicationStatus.ENROLLED,
    )
    enrolled_ever = or_(
        Application.status == ApplicationStatus.ENROLLED,
        and_(Application.status == ApplicationStatus.WITHDRAWN, was_enrolled),
    )
    enrolled = func.sum(case((enrolled_ever, 1), else_=0))
    rows = session.execute(
        select(column, func.count(), enrolled).where(column.in_(ids)).group_by(column)
    ).all()
    return {key: (int(applied), int(enrolled_count or 0)) for key, applied, enrolled_count in rows}


def registry_id(trial_id: str) -> str:
    """A trial's registry id as trials are stored under it: case and surrounding spaces do not count."""
    return trial_id.strip().upper()


def find_trial(session: Session, trial_id: str) -> Trial:
    """A trial by its registry id, case-insensitively; 404 problem if there is none."""
    trial = session.get(Trial, registry_id(trial_id))
    if trial is None:
        raise NotFound(f"no trial {trial_id}")
    return trial


def _site_trials(session: Session, caller: Caller) -> set[str]:
    """The trials of a coordinator's sites."""
    if caller.role is not Role.COORDINATOR or not caller.site_ids:
        return set()
    return set(session.scalars(select(Site.trial_id).where(Site.site_id.in_(caller.site_ids)).distinct()))


def _sees(caller: Caller, trial: Trial, site_trials: set[str]) -> bool:
    # The sponsor's name is compared in Python (Caller.speaks_for), never with SQL lower().
    return caller.role is Role.ADMIN or caller.speaks_for(trial.sponsor) or trial.trial_id in site_trials


def visible_trial(session: Session, caller: Caller, trial_id: str) -> Trial:
    """The trial if the caller sees it; else 404, worded as for a trial that does not exist."""
    trial = session.get(Trial, registry_id(trial_id))
    if trial is None or not _sees(caller, trial, _site_trials(session, caller)):
        raise NotFound(f"no trial {trial_id} visible to this token")
    return trial


def visible_trials(session: Session, caller: Caller) -> list[Trial]:
    """The trials the caller sees, by registry id."""
    site_trials = _site_trials(session, caller)
    trials = session.scalars(select(Trial).order_by(Trial.trial_id))
    return [trial for trial in trials if _sees(caller, trial, site_trials)]


def trial_view(trial: Trial, counts: tuple[int, int]) -> TrialOut:
    registry = {name: getattr(trial, name) for name in TrialRegistryFields.model_fields}
    return TrialOut(
        **registry,
        applied_count=counts[0],
        enrolled_count=counts[1],
        criteria_version=trial.current_criteria_version,
    )


def list_trials(session: Session, caller: Caller) -> list[TrialOut]:
    """The trials the caller sees, with applied and enrolled counts."""
    trials = visible_trials(session, caller)
    counts = _counts(session, Application.trial_id, [t.trial_id for t in trials])
    return [trial_view(t, counts.get(t.trial_id, (0, 0))) for t in trials]


def get_trial(session: Session, caller: Caller, trial_id: str) -> TrialOut:
    """One trial the caller sees, with its counts."""
    trial = visible_trial(session, caller, trial_id)
    return trial_view(
        trial, _counts(session, Application.trial_id, [trial.trial_id]).get(trial.trial_id, (0, 0))
    )


def list_sites(session: Session, caller: Caller, trial_id: str) -> list[SiteOut]:
    """Every site of a trial the caller sees, with its counts."""
    trial = visible_trial(session, caller, trial_id)
    sites = list(session.scalars(select(Site).where(Site.trial_id == trial.trial_id).order_by(Site.name)))
    counts = _counts(session, Application.site_id, [s.site_id for s in sites])
    return [
        SiteOut(
            site_id=s.site_id,
            trial_id=s.trial_id,
            name=s.name,
            city=s.city,
            country=s.country,
            status=s.status,  # type: ignore[arg-type]
            enrollment_target=s.enrollment_target,
            applied_count=counts.get(s.site_id, (0, 0))[0],
            enrolled_count=counts.get(s.site_id, (0, 0))[1],
        )
        for s in sites
    ]


def get_criteria(session: Session, caller: Caller, trial_id: str) -> CriteriaOut:
    """The current criteria version of a trial the caller sees."""
    trial = visible_trial(session, caller, trial_id)
    row = current_document(session, trial)
    if row is None:
        raise NotFound(f"trial {trial.trial_id} has no criteria yet")
    return CriteriaOut(
        trial_id=trial.trial_id,
        version=row.version,
        created_at=row.created_at,
        criteria=[
            CriterionSpecOut(
                id=c["id"],
                kind=c["kind"],
                text=c["text"],
                judgment=bool(c.get("judgment")),
                rule=c.get("rule"),
                reading=c.get("reading"),
            )
            for c in row.document["criteria"]
        ],
    )


def public_trial(session: Session, trial_id: str) -> PublicTrial:
    """The public summary of a trial."""
    trial = find_trial(session, trial_id)
    cities = session.scalars(
        select(Site.city)
        .where(Site.trial_id == trial.trial_id, Site.city.is_not(None))
        .distinct()
        .order_by(Site.city)
    )
    applied = _counts(session, Application.trial_id, [trial.trial_id]).get(trial.trial_id, (0, 0))[0]
    return PublicTrial(
        trial_id=trial.trial_id,
        title=trial.title,
        conditions=trial.conditions,
        overall_status=trial.overall_status,  # type: ignore[arg-type]
        cities=[c for c in cities if c],
        applied_count=applied,
    )
