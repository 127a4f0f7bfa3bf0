"""3+3 dose escalation in the database: the design, enrolment into the open level, DLT outcomes, and
the safety review's decisions. The table itself is services.trials.three_plus_three (pure)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Application, DoseAssignment, DoseEscalation, Trial
from services.errors import Conflict, NotFound
from services.events.catalogue import DoseEscalationDecided
from services.events.outbox import add_event
from services.schemas.api import (
    DltIn,
    DoseDecisionIn,
    DoseEscalationIn,
    DoseEscalationOut,
    DoseLevelOut,
    DoseRecommendationOut,
)
from services.tokens import Caller
from services.trials.three_plus_three import (
    Escalation,
    Participant,
    confirm,
    level_state,
    recommend,
    refusal_to_enrol,
    tally,
)


def _today() -> date:
    return datetime.now(UTC).date()


def design_of(row: DoseEscalation) -> Escalation:
    return Escalation(
        levels=tuple(int(level["level"]) for level in row.levels),
        cohort_size=row.cohort_size,
        max_per_level=row.max_per_level,
        dlt_window_days=row.dlt_window_days,
        open_level=row.open_level,
        expanded=frozenset(row.expanded),
        too_toxic=frozenset(row.too_toxic),
        stopped=row.stopped,
        mtd_level=row.mtd_level,
    )


def _participants(session: Session, trial_id: str) -> dict[int, list[Participant]]:
    found: dict[int, list[Participant]] = defaultdict(list)
    for row in session.scalars(select(DoseAssignment).where(DoseAssignment.trial_id == trial_id)):
        found[row.level].append(Participant(row.dosed_on, row.dlt, row.evaluable))
    return found


def configure(session: Session, trial: Trial, body: DoseEscalationIn) -> DoseEscalation:
    """Set the trial's design; refused (409) once a participant has been dosed under it."""
    row = session.get(DoseEscalation, trial.trial_id, with_for_update=True)
    dosed = session.scalar(
        select(DoseAssignment.application_id).where(DoseAssignment.trial_id == trial.trial_id)
    )
    if row is not None and dosed is not None:
        raise Conflict("participants have been dosed under this design: it can no longer change")
    if row is None:
        row = DoseEscalation(trial_id=trial.trial_id)
        session.add(row)
    row.levels = [level.model_dump() for level in body.levels]
    row.cohort_size, row.max_per_level, row.dlt_window_days = (
        body.cohort_size,
        body.max_per_level,
        body.dlt_window_days,
    )
    row.open_level, row.expanded, row.too_toxic = None, [], []
    row.stopped, row.mtd_level, row.last_decision = False, None, None
    return row


def assign_dose(session: Session, application: Application) -> None:
    """At enrolment, in its transaction: the open level, if its cohort has a place (409 naming why not).
    The design's row is locked, so two enrolments never take the same last place."""
    row = session.get(DoseEscalation, application.trial_id, with_for_update=True)
    if row is None:
        return
    design = design_of(row)
    refusal = refusal_to_enrol(design, _participants(session, row.trial_id), _today())
    if refusal is not None:
        raise Conflict(refusal)
    session.add(
        DoseAssignment(
            application_id=application.id,
            trial_id=application.trial_id,
            level=design.current,
            dosed_on=_today(),
            evaluable=True,
        )
    )


def _escalation(session: Session, trial_id: str, lock: bool = False) -> DoseEscalation:
    row = session.get(DoseEscalation, trial_id, with_for_update=lock)
    if row is None:
        raise NotFound(f"trial {trial_id} has no dose escalation")
    return row


def escalation_view(session: Session, trial_id: str) -> DoseEscalationOut:
    row = _escalation(session, trial_id)
    design, participants, today = design_of(row), _participants(session, trial_id), _today()
    found = recommend(design, participants, today)
    levels = []
    for level in row.levels:
        number = int(level["level"])
        counts = tally(participants.get(number, ()), design.dlt_window_days, today)
        levels.append(
            DoseLevelOut(
                level=number,
                dose=str(level["dose"]),
                enrolled=len(participants.get(number, ())),
                evaluable=counts.evaluable,
                dlts=counts.dlts,
                state=level_state(design, number),  # type: ignore[arg-type]
            )
        )
    return DoseEscalationOut(
        open_level=None if design.stopped else design.current,
        levels=levels,
        recommendation=DoseRecommendationOut(action=found.action, level=found.level, reason=found.reason),  # type: ignore[arg-type]
        mtd_level=design.mtd_level,
        cohort_size=design.cohort_size,
        max_per_level=design.max_per_level,
        dlt_window_days=design.dlt_window_days,
    )


def record_dlt(session: Session, caller: Caller, application_id: str, body: DltIn) -> DoseAssignment:
    """A participant's DLT outcome (coordinator of its site); 409 for an application never dosed."""
    application = session.get(Application, application_id)
    if application is None or not caller.can_use_site(application.site_id):
        raise NotFound(f"no application {application_id} visible to this token")
    row = session.get(DoseAssignment, application_id, with_for_update=True)
    if row is None:  # written only by enrolment: every dosed application was enrolled
        raise Conflict("this application was not enrolled into a dose level")
    if body.observed_on < row.dosed_on:
        raise Conflict(f"observed_on is before the participant was dosed ({row.dosed_on.isoformat()})")
    row.dlt, row.evaluable, row.observed_on = body.dlt, body.evaluable, body.observed_on
    return row


def decide(session: Session, caller: Caller, trial_id: str, body: DoseDecisionIn) -> DoseEscalation:
    """The safety review confirms the recommendation (409 when it recommends something else, or to
    wait); the design moves on, audited, with `dose_escalation.decided`."""
    row = _escalation(session, trial_id, lock=True)
    design = design_of(row)
    found = recommend(design, _participants(session, trial_id), _today())
    if found.action == "wait" or found.action != body.action:
        raise Conflict(f"the 3+3 table recommends {found.action} (level {found.level}): {found.reason}")
    moved = confirm(design, found)
    row.open_level, row.expanded, row.too_toxic = (
        moved.open_level,
        sorted(moved.expanded),
        sorted(moved.too_toxic),
    )
    row.stopped, row.mtd_level = moved.stopped, moved.mtd_level
    row.last_decision = {
        "action": found.action, "level": found.level, "reason": body.reason, "table": found.reason,
        "by": caller.token_id, "at": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    payload = DoseEscalationDecided(
        action=body.action, level=found.level, reason=body.reason, by=caller.token_id
    )
    add_event(session, payload, trial_id=trial_id)
    return row
