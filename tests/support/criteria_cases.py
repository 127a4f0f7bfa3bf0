"""The per-trial criteria tables (tests/support/criteria_tables) and what tests/unit/test_trial_criteria.py
needs to run them: a case is the trial's baseline applicant with a few observations changed, the outcome one
criterion must give, and, depending on the case, every other criterion's outcome and the decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from services.eligibility import Evaluation
from services.eligibility.model import CompiledCriteria, CompiledCriterion, CriterionResult
from services.trials.criteria import bundled_document, compile_document

SUBMITTED = date(2026, 11, 1)
CONSENT = "2026-10-01"
OUTCOMES = ("met", "not_met", "unknown")


@dataclass(frozen=True)
class Case:
    """The baseline with `changes` (a value of None removes that observation) gives `criterion` its
    `outcome`, listing `missing`, with a note containing each fragment of `note` (no note when empty).

    `others` None checks that criterion alone; a mapping (empty by default) checks the whole evaluation:
    every other criterion keeps its baseline outcome unless `others` names it, no other criterion lists a
    missing variable, and the decision and deciding criteria follow the contract's rule. `decision` and
    `deciding`, when given, are checked as stated."""

    criterion: str
    changes: Mapping[str, Any]
    outcome: str
    others: Mapping[str, str] | None = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    note: tuple[str, ...] = ()
    decision: str | None = None
    deciding: tuple[str, ...] | None = None
    label: str | None = None  # what the case shows, after the criterion id

    @property
    def id(self) -> str:
        """The criterion and the label, else the criterion and the changes."""
        changed = (
            f"without {name}" if value is None else f"{name}={value}" for name, value in self.changes.items()
        )
        return f"{self.criterion} {self.label or ', '.join(changed)}"

    @property
    def removed(self) -> str | None:
        """The one observation a removal case takes away from the baseline (and changes nothing else)."""
        if len(self.changes) == 1 and None in self.changes.values():
            return next(iter(self.changes))
        return None


def variant(
    criterion: str,
    changes: Mapping[str, Any],
    outcome: str,
    others: Mapping[str, str] | None = None,
    *,
    note: tuple[str, ...] = (),
    label: str | None = None,
) -> Case:
    """A whole-evaluation case: `others` are the other criteria whose outcome changes with it."""
    return Case(criterion, changes, outcome, dict(others or {}), note=note, label=label)


def only(
    criterion: str,
    changes: Mapping[str, Any],
    outcome: str,
    *,
    missing: Sequence[str] = (),
    note: tuple[str, ...] = (),
    label: str | None = None,
) -> Case:
    """A case that checks one criterion alone: the others may move with the changes in ways not stated."""
    return Case(criterion, changes, outcome, None, tuple(missing), note, label=label)


def without(
    criterion: str,
    name: str,
    outcome: str,
    decision: str,
    missing: Sequence[str] = (),
    deciding: tuple[str, ...] | None = None,
) -> Case:
    """The baseline without `name`: the criterion's outcome and the applicant's decision."""
    return Case(criterion, {name: None}, outcome, None, tuple(missing), (), decision, deciding)


def unknown_without(criterion: str, *names: str) -> list[Case]:
    """Each of `names` alone decides the criterion at baseline: without it, unknown listing it."""
    return [without(criterion, name, "unknown", "needs_review", (name,)) for name in names]


def kleene(
    label: str, changes: Mapping[str, Any], removed: tuple[str, ...], criterion: str, outcome: str
) -> Case:
    """A changed applicant makes absent variables matter again: an unknown lists exactly the removed ones."""
    missing = tuple(sorted(removed)) if outcome == "unknown" else ()
    return only(criterion, {**changes, **dict.fromkeys(removed)}, outcome, missing=missing, label=label)


@dataclass(frozen=True)
class Trial:
    """One trial's criteria file, its baseline applicant and its table of cases.

    The baseline passes every criterion (inclusions met, exclusions not met, judgment criteria judgment)
    except those of `baseline_reviews`, where even the best applicant goes to review."""

    criteria_file: str
    registry_file: str
    criteria: tuple[str, ...]  # the ids in the protocol's order
    judgments: tuple[str, ...]
    baseline: Mapping[str, Any]
    best_decision: tuple[str, tuple[str, ...]]  # the baseline's decision and deciding criteria
    cases: tuple[Case, ...]
    # criterion -> fragments of the note with which the baseline goes to review on it
    baseline_reviews: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # criteria that answer not_met or unknown but never met, so no case can cover met
    never_met: tuple[str, ...] = ()
    reads_age: bool = True  # some criterion reads the age derived from birth_date
    # criterion -> what it lists as missing when nothing at all is recorded
    nothing_recorded_missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # what services.trials.registry.trial_from_record gives for the registry record, by field name;
    # sites as (name, city, country, status)
    registry: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trial_id(self) -> str:
        return self.criteria_file.removesuffix(".criteria.yaml")


@cache
def _compiled(criteria_file: str) -> CompiledCriteria:
    return compile_document(bundled_document(criteria_file))


def compiled(trial: Trial) -> CompiledCriteria:
    return _compiled(trial.criteria_file)


def document(trial: Trial) -> dict[str, Any]:
    return bundled_document(trial.criteria_file)


def observations(trial: Trial, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The baseline with the changes; removing an observation the baseline lacks is an error in the table."""
    observed = dict(trial.baseline)
    for name, value in changes.items():
        if value is None:
            del observed[name]
        else:
            observed[name] = value
    return observed


def evaluate(trial: Trial, changes: Mapping[str, Any] | None = None) -> Evaluation:
    return compiled(trial).evaluate(observations(trial, changes or {}), SUBMITTED)


def result_of(evaluation: Evaluation, criterion: str) -> CriterionResult:
    (result,) = [r for r in evaluation.results if r.id == criterion]
    return result


def baseline_outcomes(trial: Trial) -> dict[str, str]:
    return {c.id: _baseline_outcome(trial, c) for c in compiled(trial).criteria}


def _baseline_outcome(trial: Trial, criterion: CompiledCriterion) -> str:
    if criterion.rule is None:
        return "judgment"
    if criterion.id in trial.baseline_reviews:
        return "unknown"
    return "met" if criterion.kind == "inclusion" else "not_met"


def expected_outcomes(trial: Trial, case: Case) -> dict[str, str]:
    """Every outcome the case states: the whole evaluation's, or its criterion's alone."""
    if case.others is None:
        return {case.criterion: case.outcome}
    return baseline_outcomes(trial) | dict(case.others) | {case.criterion: case.outcome}


def expected_decision(trial: Trial, outcomes: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """The contract's rule: ineligible on a failed inclusion or a met exclusion, else review on unknowns."""
    criteria = compiled(trial).criteria
    failing = tuple(
        c.id for c in criteria if outcomes[c.id] == ("not_met" if c.kind == "inclusion" else "met")
    )
    if failing:
        return "ineligible", failing
    unknown = tuple(c.id for c in criteria if outcomes[c.id] == "unknown")
    return ("needs_review", unknown) if unknown else ("eligible", ())


def rule_variables(node: Any) -> set[str]:
    """The variables a rule reads, with the derived `age` read from `birth_date` as the tables remove it."""
    if isinstance(node, dict):
        names = {"birth_date" if node["var"] == "age" else node["var"]} if "var" in node else set()
        return names.union(*(rule_variables(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(rule_variables(item) for item in node))
    return set()


def has_review(node: Any) -> bool:
    if isinstance(node, dict):
        return "review" in node or any(has_review(value) for value in node.values())
    if isinstance(node, list):
        return any(has_review(item) for item in node)
    return False


def outcomes_to_cover(trial: Trial, criterion: Mapping[str, Any]) -> set[str]:
    """The outcomes a criterion can take: judgment alone for a judgment criterion."""
    if criterion.get("judgment"):
        return {"judgment"}
    return set(OUTCOMES) - ({"met"} if criterion["id"] in trial.never_met else set())


def case_id(trial: Trial, case: Case) -> str:
    return f"{trial.trial_id} {case.id}"
