"""Randomisation: a trial's scheme (its secret and running state sealed at rest) and each participant's
allocation (the arm and stratum sealed, bound to the row). The sequence number is plain: it is what
blinded users see, and the database keeps it unique per trial."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, utcnow
from models.sealing import SealedJSON, seal_per_row


class RandomisationScheme(Base):
    __tablename__ = "randomisation_schemes"

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.trial_id"), primary_key=True)
    method: Mapped[str] = mapped_column(String(16))  # permuted_blocks | minimisation
    algorithm: Mapped[str] = mapped_column(String(40))
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)  # [{arm_id, ratio, label}]
    strata: Mapped[list[str]] = mapped_column(JSONType, default=list)
    block_sizes: Mapped[list[int]] = mapped_column(JSONType, default=list)
    factors: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)  # [{variable, weight}]
    probability: Mapped[float] = mapped_column(Float, default=0.85)
    imbalance: Mapped[str] = mapped_column(String(16), default="range")
    uploaded_list: Mapped[bool] = mapped_column(default=False)
    commitment: Mapped[str] = mapped_column(String(80))
    # {"seed": hex, "list": [[sequence, stratum, arm], ...]}: whoever reads it can predict every arm.
    secret: Mapped[dict[str, Any]] = mapped_column(SealedJSON)
    # {"in_stratum": {stratum: n}, "tallies": {factor: {level: {arm: n}}}, "arms": {arm: n}}: arms and
    # strata (observation values among them), so sealed too. Only allocation changes it.
    state: Mapped[dict[str, Any]] = mapped_column(SealedJSON)
    allocated: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(40))


# The associated data of each sealed column, for key rotation (services.data_keys).
scheme_secret_binding = seal_per_row(RandomisationScheme, "secret")
scheme_state_binding = seal_per_row(RandomisationScheme, "state")


class Allocation(Base):
    __tablename__ = "allocations"
    __table_args__ = (UniqueConstraint("trial_id", "sequence"),)

    application_id: Mapped[str] = mapped_column(ForeignKey("applications.id"), primary_key=True)
    trial_id: Mapped[str] = mapped_column(String(64), index=True)
    sequence: Mapped[int]
    # {"arm_id", "stratum", "position", "levels"}: the arm is the secret; the stratum and levels are
    # observation values.
    sealed: Mapped[dict[str, Any]] = mapped_column(SealedJSON)
    allocated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # An emergency code-break: the arm is shown to everyone who sees the application from then on.
    unblinded_at: Mapped[datetime | None]
    unblinded_by: Mapped[str | None] = mapped_column(String(40))


allocation_binding = seal_per_row(Allocation, "sealed")
