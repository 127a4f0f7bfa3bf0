"""The outbox's invariant, as a query a test runs after each fault: no change of an application's status
without its history row, its audit entry and its event, all committed together or not at all."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from models import Application, ApplicationHistory, AuditEntry, AuditPending, Event
from tests.support.stack import Stack

# The events that announce a change of an application's status (intake's application.submitted
# announces its first status).
STATUS_EVENTS = (
    "application.screened",
    "application.reviewed",
    "application.enrolled",
    "application.withdrawn",
)


def status_changes_without_their_records(stack: Stack) -> list[str]:
    """Every application whose status changes and their records disagree, each with what is missing.

    Per application: its status is its latest history row's; each status after the first has an audit
    entry changing the status to it (pending or chained); and there are as many status-change events as
    status changes. A decision half-written by a transaction that failed would break one of these."""
    with stack.db.sessions() as session:
        statuses = dict(session.execute(select(Application.id, Application.status)).all())
        history: dict[str, list[str]] = defaultdict(list)
        for application_id, status in session.execute(
            select(ApplicationHistory.application_id, ApplicationHistory.status).order_by(
                ApplicationHistory.id
            )
        ):
            history[application_id].append(status)
        audited: dict[str, Counter[str]] = defaultdict(Counter)
        for entity_id, changes in application_changes(session):
            if "status" in changes:
                audited[entity_id][_new_status(changes["status"])] += 1
        announced = Counter(
            session.scalars(select(Event.application_id).where(Event.type.in_(STATUS_EVENTS))).all()
        )
    broken = []
    for application_id, status in statuses.items():
        changes = history[application_id][1:]
        if not history[application_id] or history[application_id][-1] != status:
            broken.append(f"{application_id}: status {status}, history {history[application_id]}")
        elif Counter(changes) != audited[application_id]:
            broken.append(f"{application_id}: history {changes}, audit {dict(audited[application_id])}")
        elif len(changes) != announced[application_id]:
            broken.append(f"{application_id}: {len(changes)} changes, {announced[application_id]} events")
    return broken


def application_changes(session: Session, ids: Sequence[str] | None = None) -> list[tuple[str, Any]]:
    """(application id, changes) of every application change entry, chained or still pending, read in
    one statement, so one snapshot: the scheduler's chainer moves entries from pending to chained
    meanwhile, and two queries could miss one that moved between them (PostgreSQL, READ COMMITTED)."""
    selects = []
    for table in (AuditEntry, AuditPending):
        query = select(table.entity_id, table.changes).where(
            table.entity == "application", table.action == "change"
        )
        selects.append(query if ids is None else query.where(table.entity_id.in_(ids)))
    return [(str(entity_id), changes) for entity_id, changes in session.execute(union_all(*selects))]


def _new_status(change: Any) -> str:
    return str(change[1])
