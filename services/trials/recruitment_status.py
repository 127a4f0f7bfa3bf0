"""The registry's rule between a trial and its sites, kept whichever side changes.

ClinicalTrials.gov derives a study's overall status from its locations: it is RECRUITING while at least
one location recruits. Accrual keeps the same rule: a site that starts recruiting re-opens its trial,
the last recruiting site to close closes it, a trial that stops recruiting closes its recruiting sites,
and a trial that re-opens re-opens the sites that closed with it (those in the status it leaves and
below their own target). A trial without sites follows its own status alone.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Site, Trial, TrialStatus
from services.errors import InvalidInput
from services.events.catalogue import SiteStatusChanged, TrialStatusChanged
from services.events.outbox import add_event

RECRUITING = TrialStatus.RECRUITING.value
NOT_RECRUITING = TrialStatus.ACTIVE_NOT_RECRUITING.value
# A trial in one of these was stopped on purpose: an admin re-opens the trial itself, not a site.
HALTED = frozenset(
    s.value
    for s in (TrialStatus.SUSPENDED, TrialStatus.TERMINATED, TrialStatus.COMPLETED, TrialStatus.WITHDRAWN)
)


def full(place: Trial | Site) -> bool:
    return place.enrollment_target is not None and place.enrolled_count >= place.enrollment_target


def set_trial_status(session: Session, trial: Trial, status: str, reason: str, actor: str | None) -> None:
    """Change the trial's status and emit trial.status_changed, if it changes."""
    if trial.overall_status == status:
        return
    changed = TrialStatusChanged(from_=trial.overall_status, to=status, reason=reason, by=actor)
    trial.overall_status = status
    add_event(session, changed, trial_id=trial.trial_id)


def set_site_status(
    session: Session, site: Site, status: str, reason: str, actor: str | None, enrolled: int | None = None
) -> None:
    """Change the site's status and emit site.status_changed, if it changes."""
    if site.status == status:
        return
    changed = SiteStatusChanged(from_=site.status, to=status, reason=reason, enrolled=enrolled, by=actor)
    site.status = status
    add_event(session, changed, trial_id=site.trial_id, site_id=site.site_id)


def check_site_may_recruit(trial: Trial, field: str = "status") -> None:
    """A site may recruit only in a trial that may: not halted by an admin, and below its target."""
    if trial.overall_status in HALTED:
        halted = f"trial {trial.trial_id} is {trial.overall_status}: change the trial's overall_status first"
        raise InvalidInput.of(field, halted)
    if full(trial):
        raise InvalidInput.of(
            field, f"trial {trial.trial_id} has reached its enrolment target: raise it first"
        )


def _sites(session: Session, trial_id: str) -> list[Site]:
    # populate_existing: enrolment moves statuses with Core UPDATEs the session's objects did not see.
    query = select(Site).where(Site.trial_id == trial_id).execution_options(populate_existing=True)
    return list(session.scalars(query))


def trial_follows_sites(session: Session, trial: Trial, actor: str | None) -> None:
    """After a site's status changed: RECRUITING while any site recruits, and not once none does."""
    sites = _sites(session, trial.trial_id)
    if not sites:
        return
    if any(site.status == RECRUITING for site in sites):
        set_trial_status(session, trial, RECRUITING, "site_recruiting", actor)
    elif trial.overall_status == RECRUITING:
        set_trial_status(session, trial, NOT_RECRUITING, "no_site_recruiting", actor)


def _reopens_with(site: Site, previous: str) -> bool:
    return site.status == RECRUITING or (site.status == previous and not full(site))


def can_reopen(session: Session, trial: Trial) -> bool:
    """Whether the trial, leaving its current status for RECRUITING, would have a site recruiting."""
    sites = _sites(session, trial.trial_id)
    return not sites or any(_reopens_with(site, trial.overall_status) for site in sites)


def sites_follow_trial(session: Session, trial: Trial, previous: str, reason: str, actor: str | None) -> None:
    """After the trial's own status changed from `previous`: its recruiting sites close with it, or the
    sites that closed with it re-open."""
    for site in _sites(session, trial.trial_id):
        if trial.overall_status == RECRUITING and _reopens_with(site, previous):
            set_site_status(session, site, RECRUITING, "trial_reopened", actor)
        elif trial.overall_status != RECRUITING and previous == RECRUITING and site.status == RECRUITING:
            set_site_status(session, site, trial.overall_status, f"trial_{reason}", actor)
