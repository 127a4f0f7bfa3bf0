"""An application as it stood at any moment, rebuilt from the audit trail (21 CFR 11.10(e)).

Every change of an application is one audit entry with each changed column's previous and new value;
what the trail cannot hold (observations, the screening id) a change keeps, sealed, in
`previous_values`, and its entry names the row (services.audit). So the state at a moment is today's
row with every change made after that moment undone, newest first. The screening's delivery counter is
left out: it counts messages, not what was recorded about the applicant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from models import Application, AuditEntry, PreviousValues
from services.errors import NotFound

ENTITY = "application"
NOT_RECORDED = frozenset({"screening_deliveries"})
KEPT_ELSEWHERE = "previous_values"  # the entry's pointer to the values a correction replaced


@dataclass(frozen=True)
class Revision:
    """One change: when (the database's clock), by whom, through which process and request."""

    seq: int
    at: datetime
    actor: str
    actor_role: str
    service: str | None
    request_id: str | None
    action: str
    state: dict[str, Any]  # the application just after this change


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def snapshot(application: Application) -> dict[str, Any]:
    """The application's recorded state: every column but the delivery counter, JSON-shaped."""
    mapper = inspect(Application)
    return {
        attribute.key: _plain(getattr(application, attribute.key))
        for attribute in mapper.column_attrs
        if attribute.key not in NOT_RECORDED
    }


def _entries(session: Session, application_id: str) -> list[AuditEntry]:
    """The application's create and change entries, newest first."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.entity == ENTITY,
                AuditEntry.entity_id == application_id,
                AuditEntry.action.in_(("create", "change")),
            )
            .order_by(AuditEntry.seq.desc())
        )
    )


def _undo(session: Session, state: dict[str, Any], entry: AuditEntry) -> None:
    """Put back what `entry` changed: plain columns from their [previous, new] pair, the sealed ones
    from the row the entry names."""
    for column, change in entry.changes.items():
        if column == KEPT_ELSEWHERE:
            kept = session.get(PreviousValues, change)
            if kept is None:
                raise LookupError(f"audit entry {entry.seq} names previous values {change}, which are gone")
            state.update(kept.values)
        elif column in state and isinstance(change, list) and len(change) == 2:
            state[column] = change[0]


def _revision(entry: AuditEntry, state: dict[str, Any]) -> Revision:
    return Revision(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        actor_role=entry.actor_role,
        service=entry.service,
        request_id=entry.request_id,
        action=entry.action,
        state=state,
    )


def revisions(session: Session, application_id: str) -> list[Revision]:
    """Every recorded state of the application, oldest first, each with the change that made it.

    The caller chains pending entries first (services.audit.chain_pending_entries), so the newest
    change is among them. NotFound for an unknown application."""
    application = session.get(Application, application_id)
    if application is None:
        raise NotFound(f"no application {application_id}")
    state = snapshot(application)
    found = []
    for entry in _entries(session, application_id):
        found.append(_revision(entry, dict(state)))
        _undo(session, state, entry)
    return found[::-1]


def state_at(session: Session, application_id: str, moment: datetime) -> Revision | None:
    """The revision in force at `moment` (the last change at or before it); None if the application
    had not been submitted yet."""
    standing = [revision for revision in revisions(session, application_id) if revision.at <= moment]
    return standing[-1] if standing else None
