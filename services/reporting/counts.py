"""Keeping the recruitment counters: a consumer of application events, exact whatever the delivery.

The consumer never trusts the event's payload: it reads the application as it is now and applies to
the counters the difference from what it last counted for it (remembered with its version), so a
duplicate, late or out-of-order event changes nothing and the counters always equal a fresh COUNT.

Each application is counted once, under its status, except a participant withdrawn after enrolment
(contract v1.1): counted apart under `withdrawn_after`, and still in the weekly enrolments, since the
place it took is not freed.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Application, ApplicationHistory, ApplicationStatus
from models.db import Database
from models.reporting import CountedApplication, ScreenFailureCount, StatusCount, WeeklyCount
from services.applications.results import excluding_criteria, latest_screening

# The counted status of a withdrawal after enrolment (status_counts.status holds 16 characters).
WITHDRAWN_AFTER_ENROLMENT = "withdrawn_after"
# Statuses an enrolment can have preceded: the enrolled, and those withdrawn after it.
_ONCE_ENROLLED = (ApplicationStatus.ENROLLED, ApplicationStatus.WITHDRAWN)


def week_start(day: date) -> date:
    """The Monday of the ISO week `day` falls in."""
    return day - timedelta(days=day.weekday())


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


def _excluding_criteria(session: Session, application: Application) -> list[str]:
    """The criteria that excluded an ineligible application in its latest screening."""
    if application.status != ApplicationStatus.INELIGIBLE:
        return []
    latest = latest_screening(session, application.id)
    return excluding_criteria(latest.results if latest is not None else None)


def _enrolled_week(session: Session, application: Application) -> date | None:
    """The week the application was enrolled in, if it ever was."""
    if application.status not in _ONCE_ENROLLED:
        return None
    at = session.scalar(
        select(ApplicationHistory.at)
        .where(
            ApplicationHistory.application_id == application.id,
            ApplicationHistory.status == ApplicationStatus.ENROLLED,
        )
        .order_by(ApplicationHistory.id.desc())
        .limit(1)
    )
    return week_start(at.date()) if at is not None else None


def counted_status(status: str, enrolled: bool) -> str:
    """The status an application is counted under: its own, or `withdrawn_after` once it was enrolled."""
    if status == ApplicationStatus.WITHDRAWN and enrolled:
        return WITHDRAWN_AFTER_ENROLMENT
    return status


def _uncount(session: Session, counted: CountedApplication) -> None:
    _bump(
        session,
        StatusCount,
        {"trial_id": counted.trial_id, "site_id": counted.site_id, "status": counted.status},
        count=-1,
    )
    if counted.enrolled_week is not None:
        keys = {"trial_id": counted.trial_id, "site_id": counted.site_id, "week_start": counted.enrolled_week}
        _bump(session, WeeklyCount, keys, applied=0, enrolled=-1)
    for criterion_id in counted.failed_criteria:
        _bump(
            session,
            ScreenFailureCount,
            {"trial_id": counted.trial_id, "criterion_id": criterion_id},
            count=-1,
        )


def _count(session: Session, counted: CountedApplication) -> None:
    _bump(
        session,
        StatusCount,
        {"trial_id": counted.trial_id, "site_id": counted.site_id, "status": counted.status},
        count=1,
    )
    if counted.enrolled_week is not None:
        keys = {"trial_id": counted.trial_id, "site_id": counted.site_id, "week_start": counted.enrolled_week}
        _bump(session, WeeklyCount, keys, applied=0, enrolled=1)
    for criterion_id in counted.failed_criteria:
        _bump(
            session, ScreenFailureCount, {"trial_id": counted.trial_id, "criterion_id": criterion_id}, count=1
        )


def uncounted(session: Session, limit: int) -> list[str]:
    """Applications whose present state the counters do not hold: never counted (submitted before the
    counters existed, or their count task was lost with a broker) or counted at an older version."""
    query = (
        select(Application.id)
        .outerjoin(CountedApplication, CountedApplication.application_id == Application.id)
        .where(
            (CountedApplication.application_id.is_(None)) | (CountedApplication.version < Application.version)
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
    """Bring the counters in line with the application as it is now; False when nothing changed.

    Owns its transaction: losing the race for the first count to another delivery ends it (IntegrityError)."""
    try:
        with db.transaction() as session:
            return _recount(session, application_id)
    except IntegrityError:
        # Another delivery counted this application's first state at the same moment: it is counted.
        return False


def _recount(session: Session, application_id: str) -> bool:
    application = session.get(Application, application_id)
    if application is None:
        return False
    counted = session.get(CountedApplication, application_id, with_for_update=True)
    if counted is not None and counted.version >= application.version:
        return False  # a duplicate or a late event: the newer state is already counted
    # Read before a new row is added: a query autoflushes, and a row without its status cannot be written.
    enrolled_week = _enrolled_week(session, application)
    if counted is None:
        counted = CountedApplication(
            application_id=application.id,
            trial_id=application.trial_id,
            site_id=application.site_id,
            applied_week=week_start(application.submitted_at.date()),
        )
        keys = {
            "trial_id": application.trial_id,
            "site_id": application.site_id,
            "week_start": counted.applied_week,
        }
        _bump(session, WeeklyCount, keys, applied=1, enrolled=0)
        session.add(counted)
    else:
        _uncount(session, counted)
    counted.status = counted_status(application.status, enrolled_week is not None)
    counted.version = application.version
    counted.enrolled_week = enrolled_week
    counted.failed_criteria = _excluding_criteria(session, application)
    session.flush()
    _count(session, counted)
    return True
