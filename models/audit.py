"""The audit trail: append-only entries, each carrying the hash of the one before it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType

GENESIS = "0" * 64


class AuditEntry(Base):
    """Who did what to which record, when, with the previous and new values of what changed.

    Rows are never updated or deleted (database triggers refuse it); `hash` covers the entry and the
    previous entry's hash, so an edited, removed or inserted entry breaks the chain.
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


class AuditHead(Base):
    """The chain's newest hash, in one row: appending locks it, so appends form a single chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
