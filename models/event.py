"""The event log doubling as the transactional outbox, consumers' dedupe records, scheduler leases,
workers' heartbeats, and how far the retention purge has reached."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, FetchedValue, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.enums import EventStatus

# SQLite autoincrements only an INTEGER PRIMARY KEY.
SeqType = BigInteger().with_variant(Integer(), "sqlite")
TXID_DEFAULT = FetchedValue()


class Event(Base):
    """Written in the same transaction as the change it records; the relay publishes pending rows."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_due", "status", "next_attempt_at", "seq"),
        Index("ix_events_application", "application_id", "seq"),
        Index("ix_events_feed", "txid", "seq"),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    # The writing transaction's id on PostgreSQL (set by the column's default), so the feed can order
    # by (txid, seq) and show only what every older transaction has finished; 0 on SQLite, where
    # transactions write one at a time and seq alone is commit order.
    txid: Mapped[int] = mapped_column(BigInteger, server_default=TXID_DEFAULT)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    trial_id: Mapped[str | None] = mapped_column(String(64), index=True)
    site_id: Mapped[str | None] = mapped_column(String(40))
    application_id: Mapped[str | None] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=EventStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # The request that caused the event (services.provenance): its consumers act under it.
    request_id: Mapped[str | None] = mapped_column(String(64))


class EventRetention(Base):
    """One row: the feed position (txid, seq) of the newest event the retention purge deleted.

    A feed cursor before it may have missed deleted events, so the feed answers it 410 rather than
    skip them unseen; a cursor at or after it has missed nothing (services.events.retention).
    """

    __tablename__ = "event_retention"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    purged_txid: Mapped[int] = mapped_column(BigInteger)
    purged_seq: Mapped[int] = mapped_column(BigInteger)
    purged_count: Mapped[int] = mapped_column(BigInteger)
    purged_at: Mapped[datetime | None]


class ProcessedMessage(Base):
    """A consumer's record that it applied a message; written with the consumer's effects."""

    __tablename__ = "processed_messages"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchedulerLease(Base):
    """Lets several `accrual beat` processes run a periodic job once per interval between them."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime]


class WorkerHeartbeat(Base):
    """A running worker's last sign of life: the scheduler hands out again at once the work of a worker
    that stopped beating (services.events.heartbeats)."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    beat_at: Mapped[datetime]
