"""The recruitment projection: counters read by reports, changed in the transaction that changes an
application.

`CountedApplication` remembers what is counted for each application (its status, weeks and the criteria
that excluded it), so a change applies exactly the difference. The difference is appended to
`count_changes`, never added to a counter row: a counter row every writer updated would be a lock every
intake and decision waits on. A periodic fold moves the changes into the counters; a report reads the
counters plus the changes not folded yet, in one statement, so it always sees every committed change.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType


class CountedApplication(Base):
    __tablename__ = "counted_applications"

    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
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


ChangeIdType = BigInteger().with_variant(Integer(), "sqlite")


class CountChange(Base):
    """One not yet folded change to one counter, appended by the transaction that made it.

    The key columns set say which counter: `status` a StatusCount, `week_start` a WeeklyCount (with
    `applied` and `enrolled`), `criterion_id` a ScreenFailureCount; `count` is the change of the first
    and the last."""

    __tablename__ = "count_changes"
    __table_args__ = (Index("ix_count_changes_trial", "trial_id"),)

    id: Mapped[int] = mapped_column(ChangeIdType, primary_key=True, autoincrement=True)
    trial_id: Mapped[str] = mapped_column(String(64))
    site_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str | None] = mapped_column(String(16))
    week_start: Mapped[date | None] = mapped_column(Date)
    criterion_id: Mapped[str | None] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(default=0)
    applied: Mapped[int] = mapped_column(default=0)
    enrolled: Mapped[int] = mapped_column(default=0)
