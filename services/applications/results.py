"""A screening's per-criterion results as kept: one sealed value per screening (`Screening.results`).

One value rather than a row per criterion: a decision writes one row instead of thirty, and the results
are sealed at rest like the observations they were computed from (which criteria an applicant met and
what data was missing is clinical). The value is `{"criteria": [...]}`, one entry per criterion in
protocol order, `{"id", "kind", "outcome"}` plus `missing` and `note` when they hold something.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.application import Screening, results_binding
from models.sealing import Keyring, Sealed
from services.eligibility import Evaluation


@dataclass(frozen=True)
class StoredResult:
    """One criterion's outcome in one screening, as kept (its text lives in the criteria version)."""

    criterion_id: str
    kind: str  # inclusion | exclusion
    outcome: str  # met | not_met | unknown | judgment
    missing: tuple[str, ...] = ()
    note: str | None = None

    @property
    def excludes(self) -> bool:
        """Whether this outcome alone makes the applicant ineligible."""
        return (self.kind, self.outcome) in (("inclusion", "not_met"), ("exclusion", "met"))


def stored(evaluation: Evaluation) -> dict[str, Any]:
    """The value a screening keeps for `evaluation`."""
    criteria = []
    for result in evaluation.results:
        entry: dict[str, Any] = {"id": result.id, "kind": result.kind, "outcome": result.outcome}
        if result.missing:
            entry["missing"] = list(result.missing)
        if result.note is not None:
            entry["note"] = result.note
        criteria.append(entry)
    return {"criteria": criteria}


def sealed(keyring: Keyring, application_id: str, round_: int, evaluation: Evaluation) -> Sealed:
    """`stored(evaluation)` sealed for the screening (application, round), for Core inserts, which the
    mapper's sealing hook does not see."""
    value = stored(evaluation)
    return Sealed(value, keyring.seal(value, results_binding(f"{application_id}/{round_}")))


def read_results(value: Mapping[str, Any] | None) -> list[StoredResult]:
    """The results a screening kept, in protocol order."""
    if not value:
        return []
    return [
        StoredResult(
            criterion_id=entry["id"],
            kind=entry["kind"],
            outcome=entry["outcome"],
            missing=tuple(entry.get("missing", ())),
            note=entry.get("note"),
        )
        for entry in value["criteria"]
    ]


def excluding_criteria(value: Mapping[str, Any] | None) -> list[str]:
    """The criteria that excluded the applicant in a screening, in protocol order."""
    return [result.criterion_id for result in read_results(value) if result.excludes]


def latest_screening(session: Session, application_id: str) -> Screening | None:
    """The application's most recent screening, its results opened; None if it was never screened."""
    return session.scalar(
        select(Screening)
        .where(Screening.application_id == application_id)
        .order_by(Screening.round.desc())
        .limit(1)
    )
