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

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType
from models.key_lists import KeyListRules, new_key_entry, parse_key_list

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "seq", "at", "actor", "actor_role", "entity", "entity_id", "action", "changes", "prev_hash", "key_id",
)  # fmt: skip
# Distinct prefixes, so that no entry's HMAC can ever be passed off as a checkpoint's signature.
ENTRY_PURPOSE = b"accrual audit entry\x00"
CHECKPOINT_PURPOSE = b"accrual audit checkpoint\x00"
# HMAC takes keys of 32 bytes or more; an entry keeps its key's id in a 16-character column.
AUDIT_KEYS = KeyListRules(
    "ACCRUAL_AUDIT_KEYS", key_bytes=32, longer_keys=True, max_id_length=16, repeated_id_keeps="first"
)


class AuditEntry(Base):
    """Who did what to which record, when, with the previous and new values of what changed.

    Rows are never updated or deleted (database triggers refuse it); `hash` is an HMAC, under the key
    `key_id` names, of the entry and the previous entry's hash, so an edited, removed or inserted entry
    breaks the chain, and nobody without the key can mend it.
    """

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_entity", "entity", "entity_id", "seq"),)

    # Given by the appender from the chain's head (under its lock), so seq order is the chain's order.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(40))
    actor_role: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(16))


class AuditHead(Base):
    """The chain's newest hash, in one row: appending locks it, so appends form a single chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


class AuditKeyError(RuntimeError):
    """No audit key to chain with, or an entry or checkpoint names a key the keyring does not hold."""


def canonical_entry(entry: Mapping[Any, Any]) -> bytes:
    """The chained fields as canonical JSON: what an entry's HMAC covers."""
    content = {
        k: entry[k].isoformat() if isinstance(entry[k], datetime) else entry[k] for k in CHAINED_FIELDS
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


def audit_keys_of(dialect: Dialect) -> AuditKeys:
    """The audit keys riding on a database handle's dialect (see models.db.Database)."""
    keys: AuditKeys | None = getattr(dialect, "accrual_audit_keys", None)
    if keys is None:
        raise AuditKeyError("this database handle has no audit key (ACCRUAL_AUDIT_KEYS)")
    return keys
