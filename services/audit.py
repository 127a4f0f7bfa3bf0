"""The audit trail: who created, changed or read what, written in the same transaction as the act.

Changes to audited records are captured from the ORM's unit of work (before each flush), with the
previous and new values of every changed column; reads of clinical data are noted by the API. On
commit the entries are written, each with its writer's HMAC of its content under the current audit
key, to `audit_pending`; after commit the chainer (models.audit.chain_pending, run by the scheduler and
by every reader of the trail) appends them to one hash chain in commit order:
each entry's hash is an HMAC of its content and the previous hash, and the head moves on. Only the
chainer locks the chain's head, so writers never queue on it.
Clinical values never enter the trail: for observations only the names of the changed fields are
kept; secrets and hashes are omitted.

The keys live outside the database, so its holder alone cannot forge a chain that verifies. Its holder
can still cut the newest entries off and move the head back: a checkpoint (the head signed with the
key, stored elsewhere by the operator) catches that, since the trail must still hold its entry.
"""

from __future__ import annotations

import hmac
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import RowMapping, event, insert, inspect, select
from sqlalchemy.orm import Session

from models import (
    Allocation,
    ApiToken,
    Application,
    ApplicationHistory,
    AuditEntry,
    AuditHead,
    AuditPending,
    CriteriaVersion,
    DoseAssignment,
    DoseEscalation,
    PreviousValues,
    RandomisationScheme,
    Site,
    Trial,
    WebhookSubscription,
)
from models.audit import (
    CHAIN_BATCH,
    CHECKPOINT_PURPOSE,
    GENESIS,
    AuditKeyError,
    AuditKeys,
    AuditTampered,
    audit_keys_of,
    chain_pending,
)
from models.base import utcnow
from models.db import Database
from services.ids import new_id
from services.provenance import request_id, service_identity

AUDITED: dict[type[Any], str] = {
    Trial: "trial",
    Site: "site",
    CriteriaVersion: "criteria",
    Application: "application",
    ApiToken: "token",
    WebhookSubscription: "webhook",
    DoseEscalation: "dose_escalation",
    DoseAssignment: "dose_assignment",
    RandomisationScheme: "randomisation_scheme",
    Allocation: "allocation",
}
# Sealed at rest, so never copied into the trail: the allocation's arm, the scheme's seed and state.
OMITTED = frozenset(
    {"token_hash", "secret_sealed", "previous_secret_sealed", "updated_at", "secret", "state", "sealed"}
)
# Columns whose content is clinical or bulky: the trail says which keys changed, not their values.
KEYS_ONLY = frozenset({"observations", "registry_record", "document"})
REDACTED = frozenset({"screening_id"})  # a pseudonym, still kept out of the trail: the id suffices
# What the trail cannot show of an application: a change keeps the values it replaces, sealed, in
# previous_values (models.application.PreviousValues), and its entry names that row.
KEPT_PREVIOUS = frozenset({"observations", "screening_id"})
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
            "service": service_identity(),
            "request_id": request_id(),
        }
    )


def note_read(session: Session, entity: str, entity_id: str) -> None:
    """A read of clinical data: the trail says who saw which record, never what it holds."""
    note(session, entity, entity_id, "read")


def note_page_read(session: Session, entity: str, entity_ids: list[str]) -> None:
    """A bulk read: one entry for the page, naming every record it showed (`*` stands for several)."""
    note(session, entity, "*", "read", {"ids": entity_ids})


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
    reasons = _reasons_given(session)
    for instance in list(session.dirty):
        if type(instance) in AUDITED and session.is_modified(instance, include_collections=False):
            changes = _changes(instance, False)
            if isinstance(instance, Application) and KEPT_PREVIOUS & changes.keys():
                changes["previous_values"] = _keep_previous(session, instance)
            if isinstance(instance, Application) and changes and instance.id in reasons:
                changes["reason"] = reasons[instance.id]
            if changes:
                note(session, AUDITED[type(instance)], _identity(instance), "change", changes)
    for instance in list(session.deleted):
        if type(instance) in AUDITED:
            note(session, AUDITED[type(instance)], _identity(instance), "delete")


# A reason typed by a person is free text, which may hold clinical detail: it stays in the application's
# history (shown to those who may see the application), and the trail says only that one was given.
REASON_IN_HISTORY = "[given: see the application's history]"


def _reasons_given(session: Session) -> dict[str, str]:
    """The reasons a person gave for the status steps this flush records (an application's new history
    rows), so the change's one entry says why: the coded reason (a withdrawal's) as it is, free text
    only as having been given."""
    return {
        row.application_id: row.reason_code or REASON_IN_HISTORY
        for row in session.new
        if isinstance(row, ApplicationHistory) and (row.reason is not None or row.reason_code is not None)
    }


def _previous(instance: Any, name: str) -> Any:
    history = inspect(instance).attrs[name].history
    return history.deleted[0] if history.deleted else getattr(instance, name)


def _keep_previous(session: Session, application: Application) -> str:
    """Keep, sealed, the observations and screening id a correction is replacing; the trail names the
    kept row (never the values), so the application can be rebuilt as it stood before."""
    kept = PreviousValues(
        id=new_id("prv"),
        application_id=application.id,
        superseded_at=utcnow(),
        values={name: _previous(application, name) for name in sorted(KEPT_PREVIOUS)},
    )
    session.add(kept)
    return kept.id


def note_created(session: Session, instance: Any) -> None:
    """The entry of an audited record written with Core rather than by the unit of work, which would
    have captured it: the same entry, from the same columns."""
    note(session, AUDITED[type(instance)], _identity(instance), "create", _changes(instance, True))


def take_signed_entries(session: Session) -> list[dict[str, Any]]:
    """The rows of `audit_pending` for the entries noted so far, each signed by its writer, taken from
    the session: the caller writes them in this transaction (intake, in its one statement)."""
    pending: list[dict[str, Any]] = session.info.pop(PENDING, [])
    if not pending:
        return []
    keys = audit_keys_of(session.get_bind().dialect)  # no key, no commit: never an unsigned entry
    at = database_clock(session)
    rows = []
    for entry in pending:
        row = {**entry, "key_id": keys.current, "changes": _jsonable(entry["changes"])}
        if at is not None:
            row["at"] = at
        row["mac"] = keys.pending_mac(row)
        rows.append(row)
    return rows


CLOCK = "SELECT clock_timestamp()"


def database_clock(session: Session) -> datetime | None:
    """The database server's UTC time, read as the transaction is about to commit; None on SQLite.

    Entries are stamped with it, not with the writing process's clock, so a host whose clock is off
    cannot misdate the trail; and since a record's next change waits for this one's commit (its row
    lock), a record's entries are in time order. SQLite is embedded: its clock is the process's own,
    already taken when the entry was noted, so it costs no query there.
    """
    if session.get_bind().dialect.name != "postgresql":
        return None
    # Plain SQL on the transaction's connection: this runs before every commit that writes the trail.
    now: datetime = session.connection().exec_driver_sql(CLOCK).scalar_one()
    return now.astimezone(UTC)


@event.listens_for(Session, "before_commit")
def _append(session: Session) -> None:
    """Write the transaction's entries, each signed by its writer, for the chainer to chain after
    commit: no writer locks the chain's head, so writers never wait for one another here."""
    session.flush()  # capture the last changes before the entries are written
    rows = take_signed_entries(session)
    if rows:
        session.execute(insert(AuditPending), rows)


def chain_pending_entries(db: Database) -> int:
    """Chain every committed pending entry, a batch per transaction; how many.

    Run by the scheduler after each relay pass, and by every reader of the trail before it reads, so
    the trail it shows holds its own writes."""
    total = 0
    while True:
        with db.reading() as session:
            if session.scalar(select(AuditPending.id).limit(1)) is None:
                return total
        with db.transaction() as session:
            chained = chain_pending(session)
        total += chained
        if chained < CHAIN_BATCH:
            return total


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous: Any) -> None:
    session.info.pop(PENDING, None)


# --- verification and checkpoints ----------------------------------------------------------------


class CheckpointError(ValueError):
    """A checkpoint that is malformed, not signed by a key this service holds, or altered."""


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement, kept away from the database, that entry `seq` of the trail had `hash`."""

    seq: int
    hash: str
    at: str  # UTC, ISO 8601 basic format: the text stays one dot-separated token
    key_id: str
    signature: str

    def text(self) -> str:
        return ".".join((CHECKPOINT_FORMAT, self.key_id, str(self.seq), self.hash, self.at, self.signature))


CHECKPOINT_FORMAT = "acp1"
_CHECKPOINT = re.compile(
    r"acp1\.([A-Za-z0-9]{1,16})\.([0-9]{1,19})\.([0-9a-f]{64})\.([0-9]{8}T[0-9]{6}Z)\.([0-9a-f]{64})"
)


def _checkpoint_message(key_id: str, seq: int, hash_: str, at: str) -> bytes:
    return "\x00".join((key_id, str(seq), hash_, at)).encode()


@dataclass(frozen=True)
class Verdict:
    entries: int
    problem: str | None
    last_hash: str = GENESIS
    by_key: dict[str, int] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return self.problem is None


def one_snapshot(session: Session) -> None:
    """PostgreSQL gives each statement its own snapshot by default: entries committed while a long
    verification runs would look like a chain running past its head. Read everything at one."""
    if session.get_bind().dialect.name == "postgresql" and not session.in_transaction():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def chained_entries(
    session: Session, batch: int, first: int = 1, last: int | None = None
) -> Iterator[RowMapping]:
    """The entries from place `first` to `last` (to the end when None) in seq order, a batch at a time,
    as plain rows (not kept in the session: the trail may be long)."""
    after = first - 1
    while True:
        query = select(AuditEntry.__table__).where(AuditEntry.seq > after)
        if last is not None:
            query = query.where(AuditEntry.seq <= last)
        rows = session.execute(query.order_by(AuditEntry.seq).limit(batch)).mappings()
        newest = None
        for newest in rows:
            yield newest
        if newest is None:
            return
        after = newest["seq"]


def _fault(entry: RowMapping, seq: int, previous: str, keys: AuditKeys) -> str | None:
    """Why `entry` is not the chain's entry `seq` after `previous`, or None."""
    if entry["seq"] != seq:
        return f"entry {seq} is missing (found {entry['seq']} next)"
    if entry["prev_hash"] != previous:
        return f"entry {seq} does not follow entry {seq - 1}"
    if entry["key_id"] not in keys.keys:
        return f"entry {seq} names audit key {entry['key_id']!r}, which ACCRUAL_AUDIT_KEYS does not hold"
    if not hmac.compare_digest(keys.entry_hash(entry), entry["hash"]):
        return f"entry {seq} was altered: its hash does not match its content"
    return None


def _unlike(checkpoint: Checkpoint, entry: RowMapping) -> str | None:
    """Whether the entry at the checkpoint's place is no longer the one it recorded."""
    if hmac.compare_digest(entry["hash"], checkpoint.hash):
        return None
    return f"entry {checkpoint.seq} is not the one checkpointed at {checkpoint.at}: the trail was rewritten"


def verify_chain(session: Session, checkpoint: Checkpoint | None = None, batch: int = 5000) -> Verdict:
    """Recompute every entry's HMAC in order: a changed, removed, inserted or reordered entry, or one
    chained without the key, is reported; with a checkpoint, the trail must still hold its entry."""
    keys = audit_keys_of(session.get_bind().dialect)
    one_snapshot(session)
    head = session.execute(select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1)).one()
    previous, count, by_key = GENESIS, 0, Counter[str]()
    for entry in chained_entries(session, batch):
        problem = _fault(entry, count + 1, previous, keys)
        if problem is None and checkpoint is not None and entry["seq"] == checkpoint.seq:
            problem = _unlike(checkpoint, entry)
        if problem is not None:
            return Verdict(count, problem, previous, dict(by_key))
        previous, count = entry["hash"], count + 1
        by_key[entry["key_id"]] += 1
    ending: str | None = None
    if (int(head.last_seq), str(head.last_hash)) != (count, previous):
        ending = f"the chain ends at entry {count}, but its head says {head.last_seq}"
    elif checkpoint is not None and checkpoint.seq > count:
        # What deleting the tail and moving the head back looks like: only a checkpoint can tell.
        ending = f"the trail ends at entry {count}, before the checkpoint's entry {checkpoint.seq}: cut off"
    return Verdict(count, ending, previous, dict(by_key))


def verify_trail(db: Database, checkpoint: Checkpoint | None = None) -> Verdict:
    """Chain what is pending, then verify the whole trail (verify_chain). A pending entry altered while
    it waited stops the chaining, and is reported as the trail's problem."""
    try:
        chain_pending_entries(db)
        tampered = None
    except AuditTampered as exc:
        tampered = str(exc)
    with db.reading() as session:
        verdict = verify_chain(session, checkpoint)
    if verdict.intact and tampered is not None:
        return Verdict(verdict.entries, tampered, verdict.last_hash, verdict.by_key)
    return verdict


def sign_checkpoint(session: Session) -> Checkpoint:
    """Verify the whole trail, then sign its newest entry under the current audit key."""
    verdict = verify_chain(session)
    if not verdict.intact:
        raise CheckpointError(f"the audit trail is broken, no checkpoint signed: {verdict.problem}")
    keys = audit_keys_of(session.get_bind().dialect)
    at = utcnow().strftime("%Y%m%dT%H%M%SZ")
    message = _checkpoint_message(keys.current, verdict.entries, verdict.last_hash, at)
    signature = keys.digest(keys.current, CHECKPOINT_PURPOSE, message)
    return Checkpoint(verdict.entries, verdict.last_hash, at, keys.current, signature)


def read_checkpoint(text: str, keys: AuditKeys) -> Checkpoint:
    """The checkpoint `text` stands for, once its signature is checked; CheckpointError otherwise."""
    matched = _CHECKPOINT.fullmatch(text.strip())
    if matched is None:
        raise CheckpointError(f"not an audit checkpoint ({CHECKPOINT_FORMAT}.KEY.SEQ.HASH.TIME.SIGNATURE)")
    key_id, seq, hash_, at, signature = matched.groups()
    try:
        expected = keys.digest(key_id, CHECKPOINT_PURPOSE, _checkpoint_message(key_id, int(seq), hash_, at))
    except AuditKeyError:
        raise CheckpointError(f"the checkpoint is signed with audit key {key_id!r}, not held here") from None
    if not hmac.compare_digest(expected, signature):
        raise CheckpointError("the checkpoint's signature does not match: altered, or signed by another key")
    return Checkpoint(int(seq), hash_, at, key_id, signature)


def audit_page(
    session: Session,
    entity: str | None,
    entity_id: str | None,
    after: int,
    limit: int,
    correlation: str | None = None,
) -> list[AuditEntry]:
    """Entries oldest first, filtered by entity and id, or by the request that caused them; seq order
    is commit order (one chain)."""
    query = select(AuditEntry).where(AuditEntry.seq > after)
    if correlation is not None:
        query = query.where(AuditEntry.request_id == correlation)
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    return list(session.scalars(query.order_by(AuditEntry.seq).limit(limit)))
