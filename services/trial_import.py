"""Creating or replacing a trial from a ClinicalTrials.gov API v2 study record."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Site, Trial
from services.outbox import add_event
from services.problems import Problem, field_error
from services.registry import RegistryRecordError, TrialFields, site_id_for, trial_from_record


def import_record(session: Session, record: dict[str, Any], replace: bool = True) -> tuple[Trial, bool]:
    """Create the trial, or (with `replace`) replace its registry fields; sites come from its locations.

    Returns (trial, created). Sites are added, never removed: applications may point at them.
    A status change the record brings is recorded as `trial.status_changed`.
    """
    try:
        fields = trial_from_record(record)
    except RegistryRecordError as exc:
        raise Problem(
            422, "validation-error", f"the study record is incomplete: {exc}",
            errors=[field_error(exc.path, exc.detail)],
        ) from None  # fmt: skip
    trial = session.get(Trial, fields.trial_id)
    created = trial is None
    values = {k: v for k, v in asdict(fields).items() if k != "sites"}
    if trial is None:
        trial = Trial(**values, registry_record=record)
        session.add(trial)
    elif replace:
        target = fields.enrollment_target
        if target is not None and target < trial.enrolled_count:
            raise Problem(
                409,
                "invalid-state-transition",
                f"the record's enrollment count {target} is below the {trial.enrolled_count} enrolled",
            )
        previous_status = trial.overall_status
        for name, value in values.items():
            setattr(trial, name, value)
        trial.registry_record = record
        if previous_status != trial.overall_status:
            add_event(
                session,
                "trial.status_changed",
                trial_id=trial.trial_id,
                data={"from": previous_status, "to": trial.overall_status, "source": "registry"},
            )
    _add_sites(session, fields)
    session.flush()
    return trial, created


def _add_sites(session: Session, fields: TrialFields) -> None:
    known = set(session.scalars(select(Site.site_id).where(Site.trial_id == fields.trial_id)))
    for site in fields.sites:
        site_id = site_id_for(fields.trial_id, site.name)
        if site_id not in known:
            session.add(Site(site_id=site_id, trial_id=fields.trial_id, **asdict(site)))
            known.add(site_id)
