"""Creating or replacing a trial from a ClinicalTrials.gov API v2 study record."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Site, Trial
from services.errors import Conflict, FieldError, InvalidInput
from services.events.catalogue import TrialStatusChanged
from services.events.outbox import add_event
from services.trials.registry import RegistryRecordError, TrialFields, site_id_for, trial_from_record

LOCATIONS = ("protocolSection", "contactsLocationsModule", "locations")


def import_record(session: Session, record: Any, replace: bool = True) -> tuple[Trial, bool]:
    """Create the trial, or (with `replace`) replace its registry fields; sites come from its locations.

    Returns (trial, created). Sites are added, never removed: applications may point at them.
    A status change the record brings is recorded as `trial.status_changed`. A record that cannot
    become a trial is a 422 naming each bad field, raised before anything is written.
    """
    fields = _fields(record)
    trial = session.get(Trial, fields.trial_id)
    created = trial is None
    new_sites = _new_sites(session, fields)
    values = fields.model_dump(exclude={"sites"})
    if trial is None:
        trial = Trial(**values, registry_record=record)
        session.add(trial)
    elif replace:
        _replace(session, trial, fields, values, record)
    session.add_all(new_sites)
    session.flush()
    return trial, created


def _fields(record: Any) -> TrialFields:
    try:
        return trial_from_record(record)
    except RegistryRecordError as exc:
        fields = [FieldError(path, detail) for path, detail in exc.errors]
        raise InvalidInput(f"the study record is invalid: {exc}", fields=fields) from None


def _replace(
    session: Session, trial: Trial, fields: TrialFields, values: dict[str, Any], record: Any
) -> None:
    target = fields.enrollment_target
    if target is not None and target < trial.enrolled_count:
        raise Conflict(f"the record's enrollment count {target} is below the {trial.enrolled_count} enrolled")
    previous_status = trial.overall_status
    for name, value in values.items():
        setattr(trial, name, value)
    trial.registry_record = record
    if previous_status != trial.overall_status:
        changed = TrialStatusChanged(from_=previous_status, to=trial.overall_status, source="registry")
        add_event(session, changed, trial_id=trial.trial_id)


def _new_sites(session: Session, fields: TrialFields) -> list[Site]:
    """The record's locations the trial does not have yet; 422 for one named like a site added by hand,
    which the trial's unique site names would refuse only at commit."""
    named = dict(
        session.execute(select(Site.name, Site.site_id).where(Site.trial_id == fields.trial_id)).all()
    )
    sites: list[Site] = []
    for index, site in enumerate(fields.sites):
        site_id = site_id_for(fields.trial_id, site.name)
        known = named.get(site.name)
        if known is None:
            sites.append(Site(site_id=site_id, trial_id=fields.trial_id, **asdict(site)))
            named[site.name] = site_id
        elif known != site_id:
            raise InvalidInput(
                f"the study record is invalid: trial {fields.trial_id} already has a site named like "
                f"location {index}, added by an admin; rename the facility or that site",
                fields=[FieldError((*LOCATIONS, index, "facility"), "names a site the trial already has")],
            )
    return sites
