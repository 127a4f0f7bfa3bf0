"""The recruitment projection: counts kept by a consumer of application events, read by reports.

`CountedApplication` remembers what was last counted for each application (its status, version and
the criteria that excluded it), so the consumer can apply exactly the difference to the counters
whatever order or how often events arrive.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType


class CountedApplication(Base):
    __tablename__ = "counted_applications"

    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[int]
    applied_week: Mapped[date] = mapped_column(Date)
    enrolled_week: Mapped[date | None] = mapped_column(Date)
    failed_criteria: Mapped[list[str]] = mapped_column(JSONType, default=list)


class StatusCount(Base):
    """Applications per (trial, site, status)."""

    __tablename__ = "status_counts"

    trial_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class WeeklyCount(Base):
    """Applied and enrolled per (trial, site, ISO week starting Monday)."""

    __tablename__ = "weekly_counts"
    __table_args__ = (Index("ix_weekly_counts_trial_week", "trial_id", "week_start"),)

    trial_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    week_start: Mapped[date] = mapped_column(Date, primary_key=True)
    applied: Mapped[int] = mapped_column(default=0)
    enrolled: Mapped[int] = mapped_column(default=0)


class ScreenFailureCount(Base):
    """Currently ineligible applications per criterion that excluded them."""

    __tablename__ = "screen_failure_counts"

    trial_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    criterion_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
