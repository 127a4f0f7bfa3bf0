"""Trials as the registry describes them, their sites and their versioned criteria sets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, JSONType, utcnow
from models.enums import TrialStatus


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        # The backstop behind enrolment's conditional UPDATE: no race can push enrolment past the target.
        CheckConstraint(
            "enrolled_count >= 0 AND (enrollment_target IS NULL OR enrolled_count <= enrollment_target)",
            name="enrolled_within_target",
        ),
    )

    trial_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nct_id: Mapped[str | None] = mapped_column(String(16), unique=True)
    org_study_id: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(600))
    sponsor: Mapped[str] = mapped_column(String(300))
    phases: Mapped[list[str]] = mapped_column(JSONType, default=list)
    conditions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSONType, default=list)
    overall_status: Mapped[str] = mapped_column(String(32), default=TrialStatus.RECRUITING.value)
    enrollment_target: Mapped[int | None]
    enrollment_type: Mapped[str | None] = mapped_column(String(16))
    minimum_age: Mapped[str | None] = mapped_column(String(32))
    maximum_age: Mapped[str | None] = mapped_column(String(32))
    sex: Mapped[str] = mapped_column(String(8), default="ALL")
    registry_record: Mapped[dict[str, Any]] = mapped_column(default=dict)
    current_criteria_version: Mapped[int | None]
    enrolled_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    sites: Mapped[list[Site]] = relationship(back_populates="trial", order_by="Site.name")


class Site(Base):
    __tablename__ = "sites"
    __table_args__ = (
        UniqueConstraint("trial_id", "name"),
        CheckConstraint(
            "enrolled_count >= 0 AND (enrollment_target IS NULL OR enrolled_count <= enrollment_target)",
            name="enrolled_within_target",
        ),
    )

    site_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.trial_id"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    city: Mapped[str | None] = mapped_column(String(120))
    country: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(32), default=TrialStatus.RECRUITING.value)
    enrollment_target: Mapped[int | None]
    enrolled_count: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    trial: Mapped[Trial] = relationship(back_populates="sites")


class CriteriaVersion(Base):
    """An immutable criteria set; a protocol amendment adds a version, never edits one."""

    __tablename__ = "criteria_versions"
    __table_args__ = (UniqueConstraint("trial_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.trial_id"))
    version: Mapped[int]
    document: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
