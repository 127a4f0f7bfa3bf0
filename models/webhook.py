"""Webhook subscriptions and their deliveries: one delivery per (event, subscription), every attempt kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, JSONType, utcnow


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    owner_token_id: Mapped[str] = mapped_column(String(40))
    # None: an admin's subscription, to every trial's events; else the sponsor whose trials it sees.
    sponsor: Mapped[str | None] = mapped_column(String(300))
    # The signing secret, encrypted (AES-GCM): HMAC needs the plaintext, the API never shows it again.
    secret_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    failing_since: Mapped[datetime | None]
    # After a rotation, the secret it replaced (sealed the same way), still signing until the overlap ends.
    previous_secret_sealed: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]


class WebhookDelivery(Base):
    """An event owed to a subscription; its schedule lives here (next_attempt_at), not in the broker."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_listing", "subscription_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Attempts in the current round: a redelivery starts a new round from the schedule's beginning.
    round_attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    # Names the dispatch that holds the lease: a task from an earlier, expired lease finds another
    # claim here and sends nothing, so a re-dispatch never doubles an attempt.
    claim: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]

    attempts: Mapped[list[WebhookAttempt]] = relationship(
        order_by="WebhookAttempt.attempted_at", cascade="all, delete-orphan"
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(300))
