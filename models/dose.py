"""3+3 dose escalation: a trial's design with what its safety review confirmed, and each participant's
dose level and dose-limiting toxicity (DLT) outcome."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, utcnow


class DoseEscalation(Base):
    __tablename__ = "dose_escalations"

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.trial_id"), primary_key=True)
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)  # [{level, dose}], ascending
    cohort_size: Mapped[int]
    max_per_level: Mapped[int]
    dlt_window_days: Mapped[int]
    # What the safety review has confirmed: the open level (null: the first), the levels expanded to
    # max_per_level and those found too toxic, whether escalation stopped and at which MTD.
    open_level: Mapped[int | None]
    expanded: Mapped[list[int]] = mapped_column(JSONType, default=list)
    too_toxic: Mapped[list[int]] = mapped_column(JSONType, default=list)
    stopped: Mapped[bool] = mapped_column(default=False)
    mtd_level: Mapped[int | None]
    # The last confirmed decision ({action, level, reason, by, at}): the audit trail keeps every one.
    last_decision: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DoseAssignment(Base):
    """The level a participant was enrolled (and dosed) at, and its DLT outcome once recorded."""

    __tablename__ = "dose_assignments"

    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(64), index=True)
    level: Mapped[int]
    dosed_on: Mapped[date]
    dlt: Mapped[bool | None]
    evaluable: Mapped[bool] = mapped_column(default=True)
    observed_on: Mapped[date | None]
