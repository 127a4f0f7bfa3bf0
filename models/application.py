"""Applications, their status history, and their screenings with the per-criterion results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow
from models.enums import ApplicationStatus
from models.sealing import SealedJSON, seal_per_row


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        UniqueConstraint("trial_id", "site_id", "screening_id"),
        Index("ix_applications_trial_status", "trial_id", "status"),
        Index("ix_applications_listing", "submitted_at", "id"),
        # A coordinator finds an application by its screening id across trials (?screening_id=).
        Index("ix_applications_screening_id", "screening_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.trial_id"))
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.site_id"), index=True)
    screening_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=ApplicationStatus.SUBMITTED.value)
    decision: Mapped[str | None] = mapped_column(String(16))
    # Clinical: sealed at rest, bound to this row (see models.sealing); plain in memory.
    observations: Mapped[dict[str, Any]] = mapped_column(SealedJSON)
    criteria_version: Mapped[int | None]
    screening_round: Mapped[int] = mapped_column(default=1)
    screening_deliveries: Mapped[int] = mapped_column(default=0)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    # Set when screening was given up after too many deliveries (a message that kills its worker):
    # the application waits in needs_review for an operator's `accrual screening retry`.
    dead_lettered_at: Mapped[datetime | None] = mapped_column(index=True)
    version: Mapped[int] = mapped_column(default=1)

    history: Mapped[list[ApplicationHistory]] = relationship(
        order_by="ApplicationHistory.id", cascade="all, delete-orphan"
    )


# The associated data of an application's sealed observations, for Core code that reads or writes them.
observations_binding = seal_per_row(Application, "observations")


class PreviousValues(Base):
    """What a correction replaced, kept for ever (21 CFR 11.10(e): changes never obscure what was
    recorded): an application's observations and screening id as they stood until `superseded_at`.

    Sealed and bound to this row like the application's own observations, so the audit trail, which
    never holds clinical values, names this row instead; `accrual keys rotate` re-seals it.
    """

    __tablename__ = "previous_values"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), index=True)
    superseded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # {"observations": {...}, "screening_id": "..."}: both, whichever of them the correction changed.
    values: Mapped[dict[str, Any]] = mapped_column(SealedJSON)


previous_values_binding = seal_per_row(PreviousValues, "values")


class ApplicationHistory(Base):
    """Append-only: one row per status the application has had."""

    __tablename__ = "application_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str | None] = mapped_column(Text)
    # A withdrawal's coded reason (models.enums.WithdrawalReason); null for every other status.
    reason_code: Mapped[str | None] = mapped_column(String(32))


class Screening(Base):
    """One evaluation of an application against one criteria version, with its per-criterion results."""

    __tablename__ = "screenings"
    __table_args__ = (UniqueConstraint("application_id", "round"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"))
    round: Mapped[int]
    criteria_version: Mapped[int]
    decision: Mapped[str] = mapped_column(String(16))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Clinical (which criteria the applicant met, what data was missing): one value per screening, in
    # protocol order (services.applications.results says its shape), sealed at rest and bound to the
    # screening's (application, round), which is known before the insert, unlike the id.
    results: Mapped[dict[str, Any]] = mapped_column(SealedJSON)


# The associated data of a screening's sealed results, by `<application id>/<round>`, for Core code.
results_binding = seal_per_row(Screening, "results", row_key=("application_id", "round"))
