"""What a decision says to the person acting on it: each criterion with its protocol text and reading,
the reasons (the deciding criteria, with their effect in plain terms), and the remedies of an
ineligible applicant (services.eligibility.remedies). Shared by application reads and prescreening."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.eligibility import CompiledCriteria
from services.eligibility.remedies import Remedies, remedies
from services.schemas.api import CriterionOut, ReasonOut
from services.schemas.vocabulary import VOCABULARY

# The dated observations a coordinator can have repeated; birth and consent dates are not findings.
DATED = frozenset(v.name for v in VOCABULARY if v.kind == "date") - {"birth_date", "consent_date"}
EFFECTS = {("exclusion", "met"): "excludes", ("inclusion", "not_met"): "not_met"}


@dataclass(frozen=True)
class Outcome:
    """One criterion's outcome, from a stored screening or a fresh evaluation."""

    criterion_id: str
    kind: str
    outcome: str
    missing: tuple[str, ...] = ()
    note: str | None = None


def _protocol(compiled: CompiledCriteria) -> dict[str, tuple[str, str | None]]:
    """Each criterion's protocol text and encoded reading, by id."""
    return {c.id: (c.text, c.reading) for c in compiled.criteria}


def criteria_view(compiled: CompiledCriteria, outcomes: Sequence[Outcome]) -> list[CriterionOut]:
    """Every criterion's outcome with its protocol text and encoded reading."""
    protocol = _protocol(compiled)
    views = []
    for o in outcomes:
        text, reading = protocol.get(o.criterion_id, ("", None))
        views.append(
            CriterionOut(
                id=o.criterion_id,
                kind=o.kind,  # type: ignore[arg-type]
                text=text,
                outcome=o.outcome,  # type: ignore[arg-type]
                missing=list(o.missing),
                note=o.note,
                reading=reading,
            )
        )
    return views


def reasons(compiled: CompiledCriteria, outcomes: Sequence[Outcome]) -> list[ReasonOut]:
    """The criteria that decided: every excluding one when some criterion excludes, else every unknown
    one and every one left to the investigator's judgment (which no rule decides)."""
    protocol = _protocol(compiled)
    excluding = [o for o in outcomes if (o.kind, o.outcome) in EFFECTS]
    deciding = excluding or [o for o in outcomes if o.outcome in ("unknown", "judgment")]
    found = []
    for o in deciding:
        text, reading = protocol.get(o.criterion_id, ("", None))
        found.append(
            ReasonOut(
                criterion_id=o.criterion_id,
                kind=o.kind,  # type: ignore[arg-type]
                effect=EFFECTS.get((o.kind, o.outcome), o.outcome),  # type: ignore[arg-type]
                text=text,
                reading=reading,
                missing=list(o.missing),
            )
        )
    return found


def remedies_of(compiled: CompiledCriteria, observations: Mapping[str, Any], submitted_on: date) -> Remedies:
    """When an ineligible applicant could become eligible, and what must be repeated first."""
    return remedies(compiled, observations, submitted_on, DATED)
