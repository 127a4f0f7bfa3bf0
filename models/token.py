"""API tokens (stored as hashes only) and stored responses for Idempotency-Key replays."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, utcnow


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(120))
    sponsor: Mapped[str | None] = mapped_column(String(300))
    site_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Where a coordinator's e-mail notifications go; none without it.
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # Dashboard sessions carry the generation current at sign-in; a sign-out moves it on, which ends
    # every session of this token on the server, whatever copies of their cookies survive.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    # Created --unblinded: sees the arm each participant was allocated to (admins always do).
    unblinded: Mapped[bool] = mapped_column(default=False, server_default=false())


class IdempotencyRecord(Base):
    """The response first given to (caller, Idempotency-Key), replayed to a retry of the same request."""

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_records_expires_at", "expires_at"),)

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    body: Mapped[dict[str, Any]]
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
