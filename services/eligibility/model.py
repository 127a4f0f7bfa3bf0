"""What the engine reads and answers: variable specs, compiled criteria, per-criterion results, decisions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.eligibility.logic import Rule

REFERENCE_DATE = "_reference_date"
KINDS = ("bool", "int", "float", "date", "enum", "str")


@dataclass(frozen=True)
class VariableSpec:
    """The type of one observation a rule may read: bool, int, float, date, enum (with its values) or str."""

    kind: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompiledCriterion:
    id: str
    kind: str  # inclusion | exclusion
    text: str
    rule: Rule | None  # None: only the investigator can decide (outcome `judgment`)
    reading: str | None = None


# slots and no frozen: one of these is built per criterion per screening, and a frozen dataclass's
# __init__ (object.__setattr__ per field) was the engine's largest cost (bench/engine.py).
@dataclass(slots=True)
class CriterionResult:
    id: str
    kind: str
    text: str
    outcome: str  # met | not_met | unknown | judgment
    missing: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class Evaluation:
    decision: str  # eligible | ineligible | needs_review
    results: tuple[CriterionResult, ...]
    deciding: tuple[str, ...] = field(default=())  # criterion ids that made the decision


def age_at(birth: date, when: date) -> int:
    """Completed years of age on `when`."""
    return when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def environment(observations: Mapping[str, Any], submitted_on: date) -> dict[str, Any]:
    """Observations plus the derived values rules read: the reference date and age at it."""
    env = dict(observations)
    reference = _as_date(env.get("consent_date")) or submitted_on
    env[REFERENCE_DATE] = reference
    birth = _as_date(env.get("birth_date"))
    env["age"] = age_at(birth, reference) if birth else env.get("age_years")
    return env


def _outcome(criterion: CompiledCriterion, value: bool | None) -> str:
    if value is None:
        return "unknown"
    return "met" if value else "not_met"


def evaluate_criterion(criterion: CompiledCriterion, env: Mapping[str, Any]) -> CriterionResult:
    if criterion.rule is None:
        return CriterionResult(criterion.id, criterion.kind, criterion.text, "judgment")
    value, missing, notes = criterion.rule(env)
    return CriterionResult(
        criterion.id,
        criterion.kind,
        criterion.text,
        _outcome(criterion, value),
        tuple(sorted(missing)) if missing else (),
        " ".join(notes) if notes else None,
    )


def _excludes(result: CriterionResult) -> bool:
    if result.kind == "inclusion":
        return result.outcome == "not_met"
    return result.outcome == "met"


def decide(results: Sequence[CriterionResult]) -> Evaluation:
    """Ineligible if any inclusion is not met or any exclusion met; else needs review if any is unknown."""
    excluding = tuple(r.id for r in results if _excludes(r))
    if excluding:
        return Evaluation("ineligible", tuple(results), excluding)
    unknown = tuple(r.id for r in results if r.outcome == "unknown")
    if unknown:
        return Evaluation("needs_review", tuple(results), unknown)
    return Evaluation("eligible", tuple(results))


@dataclass(frozen=True)
class CompiledCriteria:
    """A criteria set ready to evaluate many applicants; compile once per version."""

    trial_id: str
    criteria: tuple[CompiledCriterion, ...]
    variables: frozenset[str]

    def evaluate(self, observations: Mapping[str, Any], submitted_on: date) -> Evaluation:
        env = environment(observations, submitted_on)
        return decide([evaluate_criterion(c, env) for c in self.criteria])
