"""Keeping the recruitment counters: changed in the transaction that changes the application.

Every path that changes an application's status goes through services.applications.transitions,
which calls `count_change` with the application's new state; so the counts a report reads change
with the status, atomically, and need no task of their own. What is counted for each application is
remembered (CountedApplication), and a change writes the difference: taken away what was counted,
added what is. The difference is appended to `count_changes`, never added to a shared counter row
(which every writer would lock); `fold_changes` moves them into the counters, and the report reads
both in one statement (models.reporting).

Each application is counted once, under its status, except a participant withdrawn after enrolment
(contract v1.1): counted apart under `withdrawn_after`, and still in the weekly enrolments, since the
place it took is not freed.

`count_application` is the repair: it counts an application from what the database holds (for
applications from before the counters, or after a manual fix), and changes nothing when the counters
already hold its state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, delete, event, func, insert, or_, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Application, ApplicationHistory, ApplicationStatus, WithdrawalReason
from models.base import utcnow
from models.db import Database
from models.reporting import CountChange, CountedApplication, ScreenFailureCount, StatusCount, WeeklyCount
from services.applications.results import excluding_criteria, latest_screening

# The counted status of a withdrawal after enrolment (status_counts.status holds 16 characters).
WITHDRAWN_AFTER_ENROLMENT = "withdrawn_after"
# Statuses an enrolment can have preceded: the enrolled, and those withdrawn after it.
_ONCE_ENROLLED = (ApplicationStatus.ENROLLED, ApplicationStatus.WITHDRAWN)
_ENROLLED_COUNTS = (ApplicationStatus.ENROLLED.value, WITHDRAWN_AFTER_ENROLMENT)
FOLD_BATCH = 5000


def week_start(day: date) -> date:
    """The Monday of the ISO week `day` falls in."""
    return day - timedelta(days=day.weekday())


# A withdrawal before enrolment is counted under its coded reason, for the CONSORT flow's "eligible but
# not enrolled" box: `wd:<reason>` (status_counts.status holds 16 characters, hence the short names).
WITHDRAWN_BEFORE_ENROLMENT = "wd:"
_REASON_KEYS = {
    WithdrawalReason.DECLINED: "declined",
    WithdrawalReason.NOT_REACHABLE: "unreachable",
    WithdrawalReason.CONSENT_WITHDRAWN: "consent",
    WithdrawalReason.INVESTIGATOR_DECISION: "investigator",
    WithdrawalReason.OTHER: "other",
}
_KEY_REASONS = {key: reason.value for reason, key in _REASON_KEYS.items()}


def counted_status(status: str, enrolled: bool, reason_code: str | None = None) -> str:
    """The status an application is counted under: its own; `withdrawn_after` for a withdrawal after
    enrolment; `wd:<reason>` for one before."""
    if status == ApplicationStatus.WITHDRAWN and enrolled:
        return WITHDRAWN_AFTER_ENROLMENT
    if status == ApplicationStatus.WITHDRAWN:
        return (
            WITHDRAWN_BEFORE_ENROLMENT + _REASON_KEYS[WithdrawalReason(reason_code or WithdrawalReason.OTHER)]
        )
    return status


def withdrawal_reason(counted: str) -> str | None:
    """The coded reason of a withdrawal before enrolment counted as `counted`; None for any other."""
    if not counted.startswith(WITHDRAWN_BEFORE_ENROLMENT):
        return None
    return _KEY_REASONS.get(counted.removeprefix(WITHDRAWN_BEFORE_ENROLMENT), WithdrawalReason.OTHER.value)


@dataclass(frozen=True)
class Counted:
    """What the counters hold for one application."""

    status: str
    enrolled_week: date | None = None
    failed_criteria: tuple[str, ...] = ()


# A counter's key: (table, trial, site or "" for screen failures, status, week or criterion).
CounterKey = tuple[str, str, str, str | date]


def _entries(trial_id: str, site_id: str, counted: Counted) -> Iterable[tuple[CounterKey, tuple[int, int]]]:
    """The counters one application's state adds to, each with (count or applied, enrolled)."""
    yield ("status", trial_id, site_id, counted.status), (1, 0)
    if counted.enrolled_week is not None:
        yield ("weekly", trial_id, site_id, counted.enrolled_week), (0, 1)
    for criterion_id in counted.failed_criteria:
        yield ("failure", trial_id, "", criterion_id), (1, 0)


class Changes:
    """Differences to the counters, netted per counter, written as rows of `count_changes`."""

    def __init__(self) -> None:
        self.by_key: dict[CounterKey, Counter[str]] = {}

    def add(self, key: CounterKey, first: int, enrolled: int = 0) -> None:
        deltas = self.by_key.setdefault(key, Counter())
        deltas["first"] += first
        deltas["enrolled"] += enrolled

    def move(self, trial_id: str, site_id: str, before: Counted | None, after: Counted) -> None:
        if before is not None:
            for key, (first, enrolled) in _entries(trial_id, site_id, before):
                self.add(key, -first, -enrolled)
        for key, (first, enrolled) in _entries(trial_id, site_id, after):
            self.add(key, first, enrolled)

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for (table, trial_id, site_id, which), deltas in self.by_key.items():
            if not any(deltas.values()):
                continue
            row: dict[str, Any] = {
                "trial_id": trial_id, "site_id": site_id, "status": None, "week_start": None,
                "criterion_id": None, "count": 0, "applied": 0, "enrolled": 0,
            }  # fmt: skip
            if table == "status":
                row.update(status=which, count=deltas["first"])
            elif table == "weekly":
                row.update(week_start=which, applied=deltas["first"], enrolled=deltas["enrolled"])
            else:
                row.update(criterion_id=which, count=deltas["first"])
            rows.append(row)
        return rows

    def write(self, session: Session) -> None:
        rows = self.rows()
        if rows:
            # The table, not the mapped class: an ORM bulk insert leaves out the None keys and splits
            # the rows into a statement per shape.
            session.execute(insert(cast(Table, CountChange.__table__)), rows)
        self.by_key.clear()


def _state(counted: CountedApplication) -> Counted:
    return Counted(counted.status, counted.enrolled_week, tuple(counted.failed_criteria))


def _remember(counted: CountedApplication, state: Counted) -> None:
    counted.status = state.status
    counted.enrolled_week = state.enrolled_week
    counted.failed_criteria = list(state.failed_criteria)


def _first_count(application: Application, state: Counted, changes: Changes) -> dict[str, Any]:
    """Count an application the counters never held: its state, and applied in its submission week;
    the row of `counted_applications` that remembers it."""
    applied_week = week_start(application.submitted_at.date())
    changes.add(("weekly", application.trial_id, application.site_id, applied_week), 1)
    changes.move(application.trial_id, application.site_id, None, state)
    return {
        "application_id": application.id,
        "trial_id": application.trial_id,
        "site_id": application.site_id,
        "applied_week": applied_week,
        "status": state.status,
        "enrolled_week": state.enrolled_week,
        "failed_criteria": list(state.failed_criteria),
    }


def submitted_counts(application: Application) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A new application's counts, for its writer to insert with it: the row of `counted_applications`
    (`submitted`) and the rows of `count_changes` (submitted, and applied in its submission week)."""
    changes = Changes()
    counted = _first_count(application, Counted(ApplicationStatus.SUBMITTED.value), changes)
    return counted, changes.rows()


def count_change(
    session: Session,
    application: Application,
    status: str,
    failed_criteria: Sequence[str] = (),
    changes: Changes | None = None,
    reason_code: str | None = None,
) -> None:
    """Count the application's move to `status` (with the criteria that excluded it, if ineligible).

    The enrolled week comes from what was counted: an enrolment is counted in this week, a withdrawal
    keeps the week of the enrolment it follows. An application the counters never held (from before
    them) is left to the repair, which counts it whole from the database. With `changes`, the
    difference is added there for the caller to write once for a batch.
    """
    counted = session.get(CountedApplication, application.id)
    if counted is None:
        return
    before = _state(counted)
    enrolled_week: date | None = None
    if status == ApplicationStatus.ENROLLED:
        enrolled_week = week_start(utcnow().date())
    elif status == ApplicationStatus.WITHDRAWN and before.status in _ENROLLED_COUNTS:
        enrolled_week = before.enrolled_week
    failed = tuple(failed_criteria) if status == ApplicationStatus.INELIGIBLE else ()
    after = Counted(counted_status(status, enrolled_week is not None, reason_code), enrolled_week, failed)
    if after == before:
        return
    _remember(counted, after)
    pending = changes or Changes()
    pending.move(counted.trial_id, counted.site_id, before, after)
    if changes is None:
        pending.write(session)


_PRELOADED = "accrual.counts.preloaded"


def preload_counted(session: Session, application_ids: Sequence[str]) -> None:
    """Load what is counted for a batch of applications in one query, for `count_change` to find in the
    session's identity map instead of a query each (which would also flush the session each time)."""
    if application_ids:
        rows = session.scalars(
            select(CountedApplication).where(CountedApplication.application_id.in_(application_ids))
        ).all()
        # The identity map holds objects weakly: keep them for the transaction, or they are gone by the
        # time they are asked for.
        session.info.setdefault(_PRELOADED, []).extend(rows)


@event.listens_for(Session, "after_commit")
def _forget_preloaded(session: Session) -> None:
    session.info.pop(_PRELOADED, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_preloaded_on_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_PRELOADED, None)


# --- folding ------------------------------------------------------------------------------------------


def _bump(session: Session, model: Any, keys: dict[str, Any], **deltas: int) -> None:
    """counter += delta, creating the row if need be: one upsert, on PostgreSQL and SQLite alike."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(model).values(**keys, **deltas)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: getattr(model, name) + delta for name, delta in deltas.items()},
        )
    )


def fold_changes(db: Database, limit: int = FOLD_BATCH) -> int:
    """Move up to `limit` pending changes into the counters; how many were moved.

    Taken with SKIP LOCKED on PostgreSQL, so folders running at once each move different changes, and
    deleted in the transaction that adds them: a change is folded exactly once."""
    with db.transaction() as session:
        taken = select(CountChange.id).order_by(CountChange.id).limit(limit).with_for_update(skip_locked=True)
        rows = session.execute(
            delete(CountChange)
            .where(CountChange.id.in_(taken.scalar_subquery()))
            .returning(
                CountChange.trial_id,
                CountChange.site_id,
                CountChange.status,
                CountChange.week_start,
                CountChange.criterion_id,
                CountChange.count,
                CountChange.applied,
                CountChange.enrolled,
            )
        ).all()
        totals: dict[tuple[Any, ...], Counter[str]] = {}
        for trial_id, site_id, status, week, criterion_id, count, applied, enrolled in rows:
            total = totals.setdefault((trial_id, site_id, status, week, criterion_id), Counter())
            total.update(count=count, applied=applied, enrolled=enrolled)
        for (trial_id, site_id, status, week, criterion_id), total in sorted(totals.items(), key=repr):
            if status is not None:
                keys = {"trial_id": trial_id, "site_id": site_id, "status": status}
                _bump(session, StatusCount, keys, count=total["count"])
            elif week is not None:
                keys = {"trial_id": trial_id, "site_id": site_id, "week_start": week}
                _bump(session, WeeklyCount, keys, applied=total["applied"], enrolled=total["enrolled"])
            elif criterion_id is not None:
                keys = {"trial_id": trial_id, "criterion_id": criterion_id}
                _bump(session, ScreenFailureCount, keys, count=total["count"])
    return len(rows)


# --- reading ------------------------------------------------------------------------------------------


def status_rows(session: Session, trial_id: str | None = None) -> list[tuple[str, str, str, int]]:
    """(trial, site, counted status, count) of one trial or of all, every committed change included,
    folded or not: one statement, so a fold committing meanwhile is seen whole or not at all."""
    folded = select(StatusCount.trial_id, StatusCount.site_id, StatusCount.status, StatusCount.count)
    pending = select(CountChange.trial_id, CountChange.site_id, CountChange.status, CountChange.count).where(
        CountChange.status.is_not(None)
    )
    if trial_id is not None:
        folded = folded.where(StatusCount.trial_id == trial_id)
        pending = pending.where(CountChange.trial_id == trial_id)
    both = union_all(folded, pending).subquery()
    query = select(both.c.trial_id, both.c.site_id, both.c.status, func.sum(both.c.count)).group_by(
        both.c.trial_id, both.c.site_id, both.c.status
    )
    return [(t, site, status, int(n)) for t, site, status, n in session.execute(query)]


def weekly_rows(session: Session, trial_id: str) -> list[tuple[date, int, int]]:
    """(week, applied, enrolled) of the trial, all sites together, every committed change included."""
    folded = select(WeeklyCount.week_start, WeeklyCount.applied, WeeklyCount.enrolled).where(
        WeeklyCount.trial_id == trial_id
    )
    pending = select(CountChange.week_start, CountChange.applied, CountChange.enrolled).where(
        CountChange.trial_id == trial_id, CountChange.week_start.is_not(None)
    )
    both = union_all(folded, pending).subquery()
    applied, enrolled = func.sum(both.c.applied), func.sum(both.c.enrolled)
    query = (
        select(both.c.week_start, applied, enrolled)
        .group_by(both.c.week_start)
        .having(or_(applied != 0, enrolled != 0))
        .order_by(both.c.week_start)
    )
    return [(week, int(a), int(e)) for week, a, e in session.execute(query)]


def failure_rows(session: Session, trial_id: str) -> list[tuple[str, int]]:
    """(criterion, currently ineligible applications it excluded), most frequent first."""
    folded = select(ScreenFailureCount.criterion_id, ScreenFailureCount.count).where(
        ScreenFailureCount.trial_id == trial_id
    )
    pending = select(CountChange.criterion_id, CountChange.count).where(
        CountChange.trial_id == trial_id, CountChange.criterion_id.is_not(None)
    )
    both = union_all(folded, pending).subquery()
    count = func.sum(both.c.count)
    query = (
        select(both.c.criterion_id, count)
        .group_by(both.c.criterion_id)
        .having(count > 0)
        .order_by(count.desc(), both.c.criterion_id)
    )
    return [(criterion_id, int(n)) for criterion_id, n in session.execute(query)]


# --- the repair ---------------------------------------------------------------------------------------


def screened_out_by(session: Session, application: Application) -> tuple[str, ...]:
    """The criteria that excluded an ineligible application in its latest screening; none for others."""
    if application.status != ApplicationStatus.INELIGIBLE:
        return ()
    latest = latest_screening(session, application.id)
    return tuple(excluding_criteria(latest.results if latest is not None else None))


def _latest_entry(session: Session, application: Application, status: str) -> ApplicationHistory | None:
    """The application's latest history entry into `status`."""
    return session.scalars(
        select(ApplicationHistory)
        .where(ApplicationHistory.application_id == application.id, ApplicationHistory.status == status)
        .order_by(ApplicationHistory.id.desc())
        .limit(1)
    ).first()


def _enrolled_week(session: Session, application: Application) -> date | None:
    """The week the application was enrolled in, if it ever was."""
    if application.status not in _ONCE_ENROLLED:
        return None
    entry = _latest_entry(session, application, ApplicationStatus.ENROLLED)
    return week_start(entry.at.date()) if entry is not None else None


def _withdrawal_code(session: Session, application: Application) -> str | None:
    """The coded reason of the application's latest withdrawal, if it is withdrawn."""
    if application.status != ApplicationStatus.WITHDRAWN:
        return None
    entry = _latest_entry(session, application, ApplicationStatus.WITHDRAWN)
    return entry.reason_code if entry is not None else None


def uncounted(session: Session, limit: int) -> list[str]:
    """Applications whose present status the counters do not hold: never counted (submitted before the
    counters existed) or changed by hand in the database."""
    withdrawn_after = and_(
        or_(
            CountedApplication.status == WITHDRAWN_AFTER_ENROLMENT,
            CountedApplication.status.startswith(WITHDRAWN_BEFORE_ENROLMENT),
        ),
        Application.status == ApplicationStatus.WITHDRAWN,
    )
    query = (
        select(Application.id)
        .outerjoin(CountedApplication, CountedApplication.application_id == Application.id)
        .where(
            CountedApplication.application_id.is_(None)
            | ((CountedApplication.status != Application.status) & ~withdrawn_after)
        )
        .limit(limit)
    )
    return list(session.scalars(query))


def count_uncounted(db: Database, limit: int = 500) -> int:
    """Count up to `limit` applications the counters missed, each in its own transaction; how many were."""
    with db.reading() as session:
        ids = uncounted(session, limit)
    return sum(count_application(db, application_id) for application_id in ids)


def count_application(db: Database, application_id: str) -> bool:
    """Bring the counters in line with the application as the database holds it; False when they
    already were. Owns its transaction: losing the race for the first count to another writer ends it."""
    try:
        with db.transaction() as session:
            return _recount(session, application_id)
    except IntegrityError:
        # The application's own transaction counted it first: it is counted.
        return False


def _recount(session: Session, application_id: str) -> bool:
    # FOR UPDATE: a transition of this application waits, and then counts from what this wrote.
    application = session.get(Application, application_id, with_for_update=True)
    if application is None:
        return False
    counted = session.get(CountedApplication, application_id)
    enrolled_week = _enrolled_week(session, application)
    present = Counted(
        counted_status(application.status, enrolled_week is not None, _withdrawal_code(session, application)),
        enrolled_week,
        screened_out_by(session, application),
    )
    changes = Changes()
    if counted is None:
        session.add(CountedApplication(**_first_count(application, present, changes)))
    else:
        before = _state(counted)
        if before == present:
            return False
        _remember(counted, present)
        changes.move(counted.trial_id, counted.site_id, before, present)
    session.flush()
    changes.write(session)
    return True
