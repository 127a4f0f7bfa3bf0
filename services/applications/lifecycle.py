"""An application's life after screening: an investigator's review, enrolment, withdrawal.

Each step locks the application and asks services.applications.transitions, which guards it by the
application's current status, records it in its history and announces it, all in one transaction.
An enrolled participant may be withdrawn too (contract v1.1): the place stays taken.

Enrolment takes its place with one conditional UPDATE per counter, so no race can enrol past a
trial's or a site's target (a CHECK constraint backs it up), and closes recruitment in the same
transaction when it takes the last place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import Application, Site, Trial, TrialStatus, WithdrawalReason
from services.applications import transitions
from services.applications.transitions import Action
from services.errors import Conflict, NotFound, NotRecruiting, TargetReached
from services.events.catalogue import TrialTargetReached
from services.events.outbox import add_event
from services.randomisation.schemes import allocate_at_enrolment
from services.tokens import Caller
from services.trials.dose_escalation import assign_dose
from services.trials.recruitment_status import (
    NOT_RECRUITING,
    set_site_status,
    set_trial_status,
    sites_follow_trial,
    trial_follows_sites,
)

RECRUITING = tuple(s.value for s in TrialStatus if s.accepts_applications)


def _application(session: Session, caller: Caller, application_id: str, action: Action) -> Application:
    """The application, locked; 404 outside the caller's sites, InvalidTransition (409) if its status
    refuses `action`."""
    application = session.get(Application, application_id, with_for_update=True)
    if application is None or not caller.can_use_site(application.site_id):
        raise NotFound(f"no application {application_id} visible to this token")
    transitions.require(application.status, action)
    return application


def review(
    session: Session,
    caller: Caller,
    application_id: str,
    decision: Literal["eligible", "ineligible"],
    reason: str,
) -> Application:
    """The investigator's decision on an application that needs review."""
    application = _application(session, caller, application_id, Action.REVIEW)
    transitions.advance(
        session, application, Action.REVIEW, by=caller.token_id, reason=reason, decision=decision
    )
    return application


def withdraw(
    session: Session, caller: Caller, application_id: str, reason: str | None, code: WithdrawalReason
) -> Application:
    """Withdraw an open application (submitted, eligible, needs review) or an enrolled participant,
    with its coded reason (and free text, required for `other`).

    A withdrawal after enrolment frees no place: the trial's and the site's enrolled counts stay.
    """
    application = _application(session, caller, application_id, Action.WITHDRAW)
    transitions.advance(
        session, application, Action.WITHDRAW, by=caller.token_id, reason=reason, reason_code=code.value
    )
    return application


def enroll(session: Session, caller: Caller, application_id: str, reason: str | None) -> Application:
    """Enrol an eligible applicant into a place under both the trial's and the site's target."""
    application = _application(session, caller, application_id, Action.ENROLL)
    assign_dose(session, application)  # a dose-escalation trial: the open level, if it has a place
    trial = _take_place(session, Trial, Trial.trial_id == application.trial_id)
    site = _take_place(session, Site, Site.site_id == application.site_id) if trial else None
    if trial is None or site is None:
        raise _refusal(session, application)
    allocate_at_enrolment(session, application)  # a randomised trial: the next arm, with the place taken
    transitions.advance(session, application, Action.ENROLL, by=caller.token_id, reason=reason)
    # The site first: closing the trial then closes only the sites still recruiting.
    if site.full:
        _close_site(session, application, site)
    closed_trial = session.get_one(Trial, application.trial_id, populate_existing=True)
    if trial.full:
        _close_trial(session, closed_trial, trial)
    elif site.full:
        trial_follows_sites(session, closed_trial, None)
    return application


@dataclass(frozen=True)
class Place:
    """A counter after taking one place: how many are enrolled now, the target, the status before."""

    enrolled: int
    target: int | None
    status: str

    @property
    def full(self) -> bool:
        return self.target is not None and self.enrolled >= self.target


def _take_place(session: Session, model: type[Trial] | type[Site], which: Any) -> Place | None:
    """One atomic step: still recruiting and below target, then one more enrolled; None otherwise."""
    status_column = Trial.overall_status if model is Trial else Site.status
    result = session.execute(
        update(model)
        .where(
            which,
            status_column.in_(RECRUITING),
            (model.enrollment_target.is_(None)) | (model.enrolled_count < model.enrollment_target),
        )
        .values(enrolled_count=model.enrolled_count + 1)
        .returning(model.enrolled_count, model.enrollment_target, status_column)
        .execution_options(synchronize_session=False)
    ).first()
    if result is None:
        return None
    return Place(int(result[0]), result[1], str(result[2]))


def _refusal(session: Session, application: Application) -> Conflict:
    """Why no place was taken, read after the refused UPDATEs: a full trial or site (`target-reached`,
    also once the last place closed recruitment, or closed the trial with its last site) before a
    trial or site paused or closed with room left (`not-recruiting`). Read without a lock: either
    answer is a refusal and the transaction rolls back; only the problem type differs."""
    trial = session.execute(
        select(Trial.enrolled_count, Trial.enrollment_target, Trial.overall_status).where(
            Trial.trial_id == application.trial_id
        )
    ).one()
    site = session.execute(
        select(Site.enrolled_count, Site.enrollment_target, Site.status).where(
            Site.site_id == application.site_id
        )
    ).one()
    for name, (enrolled, target, _status) in (("the trial", trial), ("the site", site)):
        if target is not None and enrolled >= target:
            return TargetReached(f"{name}'s enrolment target is reached ({enrolled} of {target} enrolled)")
    for name, (_enrolled, _target, status) in (("the trial", trial), ("the site", site)):
        if status not in RECRUITING:
            return NotRecruiting(f"{name} is not recruiting (status {status})", recruitment_status=status)
    return TargetReached("no place is left")  # the counters moved since the UPDATE: a race lost


def _close_trial(session: Session, trial: Trial, place: Place) -> None:
    add_event(session, TrialTargetReached(enrolled=place.enrolled), trial_id=trial.trial_id)
    set_trial_status(session, trial, NOT_RECRUITING, "target_reached", None)
    sites_follow_trial(session, trial, place.status, "target_reached", None)


def _close_site(session: Session, application: Application, place: Place) -> None:
    site = session.get_one(Site, application.site_id, populate_existing=True)
    set_site_status(session, site, NOT_RECRUITING, "target_reached", None, enrolled=place.enrolled)
