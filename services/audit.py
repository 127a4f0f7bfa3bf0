"""The audit trail: who created, changed or read what, written in the same transaction as the act.

Changes to audited records are captured from the ORM's unit of work (before each flush), with the
previous and new values of every changed column; reads of clinical data are noted by the API. On
commit the entries are appended to one hash chain: the chain's head row is locked, each entry's hash
covers its content and the previous hash, and the head moves on. Clinical values never enter the
trail: for observations only the names of the changed fields are kept; secrets and hashes are omitted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import event, insert, inspect, select, update
from sqlalchemy.orm import Session

from models import (
    ApiToken,
    Application,
    AuditEntry,
    AuditHead,
    CriteriaVersion,
    Site,
    Trial,
    WebhookSubscription,
)
from models.audit import GENESIS
from models.base import utcnow

AUDITED: dict[type[Any], str] = {
    Trial: "trial",
    Site: "site",
    CriteriaVersion: "criteria",
    Application: "application",
    ApiToken: "token",
    WebhookSubscription: "webhook",
}
OMITTED = frozenset({"token_hash", "secret_sealed", "updated_at"})
# Columns whose content is clinical or bulky: the trail says which keys changed, not their values.
KEYS_ONLY = frozenset({"observations", "registry_record", "document"})
REDACTED = frozenset({"screening_id"})  # a pseudonym, still kept out of the trail: the id suffices
PENDING = "accrual.audit.pending"

_actor: ContextVar[tuple[str, str]] = ContextVar("accrual_audit_actor", default=("system", "system"))


def set_actor(actor: str, role: str) -> Token[tuple[str, str]]:
    """Make `actor` the author of what this context does, until `reset_actor`."""
    return _actor.set((actor, role))


def reset_actor(token: Token[tuple[str, str]]) -> None:
    _actor.reset(token)


@contextmanager
def acting_as(actor: str, role: str) -> Iterator[None]:
    token = set_actor(actor, role)
    try:
        yield
    finally:
        reset_actor(token)


def note(
    session: Session, entity: str, entity_id: str, action: str, changes: dict[str, Any] | None = None
) -> None:
    """Add an entry to the session's transaction; it is chained and written on commit."""
    actor, role = _actor.get()
    session.info.setdefault(PENDING, []).append(
        {
            "at": utcnow(),
            "actor": actor,
            "actor_role": role,
            "entity": entity,
            "entity_id": entity_id,
            "action": action,
            "changes": changes or {},
        }
    )


def note_read(session: Session, entity: str, entity_id: str) -> None:
    """A read of clinical data: the trail says who saw which record, never what it holds."""
    note(session, entity, entity_id, "read")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return value


def _shown(column: str, old: Any, new: Any) -> Any:
    if column in REDACTED:
        return "[redacted]"
    if column in KEYS_ONLY:
        before, after = old or {}, new or {}
        keys = set(before) | set(after) if isinstance(before, dict) and isinstance(after, dict) else set()
        return {"changed_keys": sorted(k for k in keys if before.get(k) != after.get(k))}
    return [_jsonable(old), _jsonable(new)]


def _identity(instance: Any) -> str:
    mapper = inspect(instance).mapper
    if isinstance(instance, CriteriaVersion):
        return f"{instance.trial_id}:v{instance.version}"
    return ":".join(str(v) for v in mapper.primary_key_from_instance(instance))


def _changes(instance: Any, created: bool) -> dict[str, Any]:
    state = inspect(instance)
    changes: dict[str, Any] = {}
    for attribute in state.mapper.column_attrs:
        name = attribute.key
        if name in OMITTED:
            continue
        history = state.attrs[name].history
        if created:
            value = getattr(instance, name)
            if value is not None:
                changes[name] = _shown(name, None, value)
        elif history.has_changes():
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            if old != new:
                changes[name] = _shown(name, old, new)
    return changes


@event.listens_for(Session, "before_flush")
def _capture(session: Session, _context: Any, _instances: Any) -> None:
    for instance in list(session.new):
        if type(instance) in AUDITED:
            note(session, AUDITED[type(instance)], _identity(instance), "create", _changes(instance, True))
    for instance in list(session.dirty):
        if type(instance) in AUDITED and session.is_modified(instance, include_collections=False):
            changes = _changes(instance, False)
            if changes:
                note(session, AUDITED[type(instance)], _identity(instance), "change", changes)
    for instance in list(session.deleted):
        if type(instance) in AUDITED:
            note(session, AUDITED[type(instance)], _identity(instance), "delete")


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 over the entry's canonical JSON, which includes the previous entry's hash."""
    fields = ("seq", "at", "actor", "actor_role", "entity", "entity_id", "action", "changes", "prev_hash")
    canonical = json.dumps(
        {k: _jsonable(entry[k]) for k in fields}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@event.listens_for(Session, "before_commit")
def _append(session: Session) -> None:
    session.flush()  # capture the last changes before the chain is written
    pending: list[dict[str, Any]] = session.info.pop(PENDING, [])
    if not pending:
        return
    head = session.execute(
        select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1).with_for_update()
    ).one()
    seq, previous = int(head.last_seq), str(head.last_hash)
    rows = []
    for entry in pending:
        seq += 1
        row = {**entry, "seq": seq, "prev_hash": previous, "changes": _jsonable(entry["changes"])}
        row["hash"] = previous = entry_hash(row)
        rows.append(row)
    session.execute(insert(AuditEntry), rows)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=seq, last_hash=previous))


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous: Any) -> None:
    session.info.pop(PENDING, None)


@dataclass(frozen=True)
class Verdict:
    entries: int
    problem: str | None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify_chain(session: Session, batch: int = 5000) -> Verdict:
    """Recompute every hash in order: a changed, removed, inserted or reordered entry is reported."""
    previous, expected_seq, count = GENESIS, 1, 0
    last = session.execute(select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()
    after = 0
    while True:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)
        ).all()
        if not entries:
            break
        for entry in entries:
            if entry.seq != expected_seq:
                return Verdict(count, f"entry {expected_seq} is missing (found {entry.seq} next)")
            if entry.prev_hash != previous:
                return Verdict(count, f"entry {entry.seq} does not follow entry {entry.seq - 1}")
            content = {c.key: getattr(entry, c.key) for c in inspect(AuditEntry).column_attrs}
            if entry_hash(content) != entry.hash:
                return Verdict(count, f"entry {entry.seq} was altered: its hash does not match its content")
            previous, expected_seq, count = entry.hash, expected_seq + 1, count + 1
        after = entries[-1].seq
    if (int(last.last_seq), str(last.last_hash)) != (count, previous):
        return Verdict(count, f"the chain ends at entry {count}, but its head says {last.last_seq}")
    return Verdict(count, None)


def audit_page(
    session: Session, entity: str | None, entity_id: str | None, after: int, limit: int
) -> list[AuditEntry]:
    """Entries oldest first, filtered by entity and id; seq order is commit order (one chain)."""
    query = select(AuditEntry).where(AuditEntry.seq > after)
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    return list(session.scalars(query.order_by(AuditEntry.seq).limit(limit)))
