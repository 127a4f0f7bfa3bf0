"""The audit trail: append-only entries, each carrying an HMAC of itself and of the one before it.

The HMAC keys (ACCRUAL_AUDIT_KEYS) live outside the database, so whoever holds the database alone can
neither edit an entry nor forge a chain that verifies. Each entry names the key that chained it, so
the key can be rotated and older entries still verify under theirs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    String,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, JSONType
from models.key_lists import KeyListRules, new_key_entry, parse_key_list

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "seq", "at", "actor", "actor_role", "entity", "entity_id", "action", "changes", "prev_hash", "key_id",
    "service", "request_id",
)  # fmt: skip
# What a pending entry's writer signs: its content, before the chain gives it a place.
PENDING_FIELDS = (
    "at", "actor", "actor_role", "entity", "entity_id", "action", "changes", "key_id",
    "service", "request_id",
)  # fmt: skip
# Added in revision 0024: left out of the signed content when empty, so that entries written before
# then (which have neither) hash as they did.
LATER_FIELDS = frozenset({"service", "request_id"})
# Distinct prefixes, so that no entry's HMAC can ever be passed off as a checkpoint's signature, or a
# pending entry's as a chained one's.
ENTRY_PURPOSE = b"accrual audit entry\x00"
CHECKPOINT_PURPOSE = b"accrual audit checkpoint\x00"
PENDING_PURPOSE = b"accrual audit pending entry\x00"
# HMAC takes keys of 32 bytes or more; an entry keeps its key's id in a 16-character column.
AUDIT_KEYS = KeyListRules(
    "ACCRUAL_AUDIT_KEYS", key_bytes=32, longer_keys=True, max_id_length=16, repeated_id_keeps="first"
)


class _EntryContent:
    """What an entry says, chained or pending: when, who, what, and the values that changed."""

    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(40))
    actor_role: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The process that wrote it (services.provenance: role@host:pid) and the request it served or
    # followed, so a worker's act leads back to the request and user that caused it.
    service: Mapped[str | None] = mapped_column(String(80))
    request_id: Mapped[str | None] = mapped_column(String(64))


class AuditEntry(_EntryContent, Base):
    """Who did what to which record, when, with the previous and new values of what changed.

    Rows are never updated or deleted (database triggers refuse it); `hash` is an HMAC, under the key
    `key_id` names, of the entry and the previous entry's hash, so an edited, removed or inserted entry
    breaks the chain, and nobody without the key can mend it.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_entity", "entity", "entity_id", "seq"),
        Index("ix_audit_entries_request_id", "request_id"),
    )

    # Given by the chainer from the chain's head (under its lock), so seq order is the chain's order.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(16))


class AuditPending(_EntryContent, Base):
    """An entry written by the transaction that made it, waiting for the chainer to give it its place.

    Writers append here and lock nothing of each other's; the chainer (chain_pending) moves entries into
    the chain in commit order. `mac` is the writer's HMAC of the content under `key_id`, checked before
    chaining, so an entry edited while it waits is refused.
    """

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    key_id: Mapped[str] = mapped_column(String(16))
    mac: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's newest hash, in one row: the chainer locks it, so what it chains forms a single chain
    (writers never touch it)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


class AuditKeyError(RuntimeError):
    """No audit key to chain with, or an entry or checkpoint names a key the keyring does not hold."""


def canonical_entry(entry: Mapping[Any, Any], fields: tuple[str, ...] = CHAINED_FIELDS) -> bytes:
    """The fields (by default the chained ones) as canonical JSON: what an entry's HMAC covers."""
    content = {
        k: entry[k].isoformat() if isinstance(entry[k], datetime) else entry[k]
        for k in fields
        if not (k in LATER_FIELDS and entry.get(k) is None)
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class AuditKeys:
    """HMAC-SHA256 keys by id; `current` chains new entries, every key verifies what it chained."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def parse(cls, text: str) -> AuditKeys:
        """`id:base64key,id:base64key,...` (ACCRUAL_AUDIT_KEYS); the first is current (models.key_lists)."""
        keys, current = parse_key_list(text, AUDIT_KEYS)
        return cls(keys, current)

    new_entry = staticmethod(new_key_entry)

    def digest(self, key_id: str, purpose: bytes, message: bytes) -> str:
        """The hex HMAC of `message` for `purpose` under key `key_id`."""
        key = self.keys.get(key_id)
        if key is None:
            raise AuditKeyError(f"no audit key {key_id!r} in ACCRUAL_AUDIT_KEYS")
        return hmac.new(key, purpose + message, hashlib.sha256).hexdigest()

    def entry_hash(self, entry: Mapping[Any, Any]) -> str:
        """The entry's chain hash, under the key its `key_id` names."""
        return self.digest(str(entry["key_id"]), ENTRY_PURPOSE, canonical_entry(entry))

    def pending_mac(self, entry: Mapping[Any, Any]) -> str:
        """A pending entry's writer's HMAC of its content, under the key its `key_id` names."""
        return self.digest(str(entry["key_id"]), PENDING_PURPOSE, canonical_entry(entry, PENDING_FIELDS))


def audit_keys_of(dialect: Dialect) -> AuditKeys:
    """The audit keys riding on a database handle's dialect (see models.db.Database)."""
    keys: AuditKeys | None = getattr(dialect, "accrual_audit_keys", None)
    if keys is None:
        raise AuditKeyError("this database handle has no audit key (ACCRUAL_AUDIT_KEYS)")
    return keys


class AuditTampered(RuntimeError):
    """A pending entry's content no longer matches its writer's HMAC: it was edited while it waited."""


CHAIN_BATCH = 5000


def chain_pending(session: Session, limit: int = CHAIN_BATCH) -> int:
    """Give up to `limit` pending entries their place in the chain; how many were chained.

    In commit order, as the chainer sees it: what has committed since its last pass comes after all it
    chained before (and, within a pass, in the order written). Each entry is deleted from the pending
    ones in the transaction that chains it, and the head's lock makes chainers take turns (under READ
    COMMITTED the next one's reads see what the last one chained), so an entry is chained exactly once.
    AuditTampered, and nothing chained, if an entry's content no longer matches its writer's HMAC.
    """
    head = session.execute(
        select(AuditHead.last_seq, AuditHead.last_hash).where(AuditHead.id == 1).with_for_update()
    ).one()
    query = select(AuditPending.__table__).order_by(AuditPending.id).limit(limit)
    pending = session.execute(query).mappings().all()
    if not pending:
        return 0
    keys = audit_keys_of(session.get_bind().dialect)
    seq, previous = int(head.last_seq), str(head.last_hash)
    chained = []
    for row in pending:
        if not hmac.compare_digest(keys.pending_mac(row), row["mac"]):
            raise AuditTampered(f"pending audit entry {row['id']} was altered while it waited to be chained")
        seq += 1
        entry = {name: row[name] for name in PENDING_FIELDS} | {"seq": seq, "prev_hash": previous}
        entry["hash"] = previous = keys.entry_hash(entry)
        chained.append(entry)
    session.execute(insert(AuditEntry), chained)
    session.execute(delete(AuditPending).where(AuditPending.id.in_([row["id"] for row in pending])))
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=seq, last_hash=previous))
    return len(pending)
