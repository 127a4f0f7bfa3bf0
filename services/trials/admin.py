"""An admin's changes to a trial or a site: status and enrolment target, each with its event.

A target may not go below what is already enrolled. Raising the target of a trial or site that closed
because its target was reached re-opens recruitment. The registry's rule between a trial and its
sites (services.trials.recruitment_status) is kept after every change. A trial without criteria is not
opened for recruitment, by its own status or by a site's: its applications could not be screened.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import Site, Trial, TrialStatus
from services.errors import Conflict, FieldError, InvalidInput, NotFound, TargetBelowEnrolled
from services.events.catalogue import SiteStatusChanged
from services.events.outbox import add_event
from services.ids import new_id
from services.trials.queries import registry_id
from services.trials.recruitment_status import (
    RECRUITING,
    can_reopen,
    check_site_may_recruit,
    set_site_status,
    set_trial_status,
    sites_follow_trial,
    trial_follows_sites,
)

CLOSED_BY_TARGET = TrialStatus.ACTIVE_NOT_RECRUITING.value


def _new_status(
    current: str, requested: str | None, target: int | None, enrolled: int, target_changed: bool
) -> str:
    """The status after a change: the requested one; else closed if the target is now reached, or
    re-opened if a raised target left room after the target had closed recruitment."""
    if requested is not None:
        return requested
    reached = target is not None and enrolled >= target
    if target_changed and reached and TrialStatus(current).accepts_applications:
        return CLOSED_BY_TARGET
    if target_changed and not reached and current == CLOSED_BY_TARGET:
        return TrialStatus.RECRUITING.value
    return current


def _check_target(target: int | None, enrolled: int, what: str) -> None:
    if target is not None and target < enrolled:
        raise TargetBelowEnrolled(
            f"{what} already has {enrolled} enrolled; its enrollment_target cannot be {target}"
        )


def _check_may_open(trial: Trial, field: str) -> None:
    """A trial without criteria cannot open for recruitment: nothing could screen its applications."""
    if trial.current_criteria_version is None:
        raise Conflict(
            f"trial {trial.trial_id} has no criteria yet: attach them (PUT /api/v1/trials/{trial.trial_id}"
            "/criteria) before it recruits",
            fields=[FieldError(field, "the trial has no criteria yet")],
        )


def _check_site_may_open(trial: Trial) -> None:
    """A site that starts recruiting opens its trial (recruitment_status): not one without criteria."""
    if not TrialStatus(trial.overall_status).accepts_applications:
        _check_may_open(trial, "status")


def _locked_trial(session: Session, trial_id: str) -> Trial:
    # The trial's row is locked first, as enrolment locks it: its sites' statuses are read under it.
    trial = session.get(Trial, registry_id(trial_id), with_for_update=True)
    if trial is None:
        raise NotFound(f"no trial {trial_id}")
    return trial


def change_trial(session: Session, trial_id: str, changes: dict[str, Any], actor: str) -> Trial:
    """Apply `overall_status` and/or `enrollment_target` (those present in `changes`); the sites follow."""
    trial = _locked_trial(session, trial_id)
    target_changed = "enrollment_target" in changes
    target = changes["enrollment_target"] if target_changed else trial.enrollment_target
    _check_target(target, trial.enrolled_count, "the trial")
    requested = changes.get("overall_status")
    status = _new_status(trial.overall_status, requested, target, trial.enrolled_count, target_changed)
    if status != trial.overall_status and TrialStatus(status).accepts_applications:
        _check_may_open(trial, "overall_status")
    if status == RECRUITING and target is not None and trial.enrolled_count >= target:
        raise InvalidInput.of(
            "overall_status", "the enrolment target is reached: raise enrollment_target to recruit again"
        )
    if status == RECRUITING and status != trial.overall_status and not can_reopen(session, trial):
        if requested is not None:
            raise InvalidInput.of(
                "overall_status",
                "none of the trial's sites can recruit: open a site or raise a site's enrollment_target",
            )
        status = trial.overall_status  # the raised target is kept; a site re-opening re-opens the trial
    previous = trial.overall_status
    trial.enrollment_target = target
    if status != previous:
        reason = "target_reached" if status == CLOSED_BY_TARGET and requested is None else "changed_by_admin"
        set_trial_status(session, trial, status, reason, actor)
        sites_follow_trial(session, trial, previous, reason, actor)
    return trial


def change_site(session: Session, trial_id: str, site_id: str, changes: dict[str, Any], actor: str) -> Site:
    """Apply `status` and/or `enrollment_target` to one site of the trial; the trial follows."""
    trial = _locked_trial(session, trial_id)
    site = session.get(Site, site_id, with_for_update=True)
    if site is None or site.trial_id != trial.trial_id:
        raise NotFound(f"no site {site_id} in trial {trial_id}")
    target_changed = "enrollment_target" in changes
    target = changes["enrollment_target"] if target_changed else site.enrollment_target
    _check_target(target, site.enrolled_count, "the site")
    status = _new_status(site.status, changes.get("status"), target, site.enrolled_count, target_changed)
    if status == RECRUITING and target is not None and site.enrolled_count >= target:
        raise InvalidInput.of(
            "status", "the site's enrolment target is reached: raise enrollment_target to recruit again"
        )
    if status == RECRUITING and site.status != RECRUITING:
        check_site_may_recruit(trial)
        _check_site_may_open(trial)
    site.enrollment_target = target
    set_site_status(session, site, status, "changed_by_admin", actor)
    trial_follows_sites(session, trial, actor)
    return site


def add_site(session: Session, trial_id: str, fields: dict[str, Any], actor: str) -> Site:
    """A new site for the trial; its name is unique within the trial. The trial follows its status."""
    trial = _locked_trial(session, trial_id)
    if any(s.name == fields["name"] for s in trial.sites):
        raise Conflict(f"trial {trial.trial_id} already has a site named {fields['name']!r}")
    if fields.get("status", RECRUITING) == RECRUITING:
        check_site_may_recruit(trial)
        _check_site_may_open(trial)
    site = Site(site_id=new_id("site"), trial_id=trial.trial_id, **fields)
    session.add(site)
    added = SiteStatusChanged(from_=None, to=site.status, reason="site_added", by=actor)
    add_event(session, added, trial_id=trial.trial_id, site_id=site.site_id)
    session.flush()
    trial_follows_sites(session, trial, actor)
    return site
