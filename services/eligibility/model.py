"""What the engine reads and answers: variable specs, compiled criteria, per-criterion results, decisions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.eligibility.logic import Answer, Explain, Rule, Value, Why

REFERENCE_DATE = "_reference_date"
AGE = "age"  # derived: completed years at the reference date, from birth_date, else age_years
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
    # The rule's compiled closures (logic.py); `rule` is the same rule as a verdict over an environment.
    answer: Answer | None = field(default=None, repr=False)
    explain: Explain | None = field(default=None, repr=False)


# Frozen (and slotted): CompiledCriteria.evaluate hands out the same instances again, the met, not met and
# judgment result of each criterion and the same Evaluation for the same outcomes, instead of building them
# per criterion per screening, so neither may ever change.
@dataclass(frozen=True, slots=True)
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
    env[AGE] = age_at(birth, reference) if birth else env.get("age_years")
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


# ---------------------------------------------------------------------------------------------------------
# Evaluating a compiled set: the same results as
#     decide([evaluate_criterion(c, environment(observations, submitted_on)) for c in criteria])
# without building the environment (rules read the observations' own `get`, the reference date and age
# come as arguments, computed only when some rule reads them), without a verdict per node (a known
# criterion runs its `answer` alone), and without building results and a decision again for outcomes
# already seen (see plan()).
# ---------------------------------------------------------------------------------------------------------

Evaluate = Callable[[Mapping[str, Any], date], Evaluation]
# Per criteria set, evaluations kept by what decided them (then it starts over): most applicants of a trial
# fall into a few hundred patterns of outcomes, and the evaluation of a pattern never changes.
EVALUATIONS_KEPT = 1024


def _interpreted(criteria: tuple[CompiledCriterion, ...]) -> Evaluate:
    """For criteria given as verdict rules alone (no compiled closures): the reference path."""

    def evaluate(observations: Mapping[str, Any], submitted_on: date) -> Evaluation:
        env = environment(observations, submitted_on)
        return decide([evaluate_criterion(c, env) for c in criteria])

    return evaluate


def plan(criteria: tuple[CompiledCriterion, ...], reads_reference: bool, reads_age: bool) -> Evaluate:
    """The evaluation function of a criteria set, its per-criterion constants bound once.

    Each rule criterion answers True, False or, when unknown, (missing names, notes); the tuple of those
    answers fixes the whole evaluation, so an evaluation is built (by decide()) only for an answer pattern
    not seen before, and handed out again, immutable, for every applicant with the same pattern."""
    if any(c.rule is not None and (c.answer is None or c.explain is None) for c in criteria):
        return _interpreted(criteria)
    reads_reference = reads_reference or reads_age  # age is taken at the reference date
    ruled = [c for c in criteria if c.rule is not None]
    steps = tuple((c.answer, c.explain) for c in ruled if c.answer is not None and c.explain is not None)
    results = {
        c.id: (
            CriterionResult(c.id, c.kind, c.text, "met"),
            CriterionResult(c.id, c.kind, c.text, "not_met"),
        )
        for c in ruled
    }
    judged = {c.id: CriterionResult(c.id, c.kind, c.text, "judgment") for c in criteria if c.rule is None}
    kept: dict[tuple[Value | Why, ...], Evaluation] = {}

    def build(answers: tuple[Value | Why, ...]) -> Evaluation:
        answer = iter(answers)
        built = []
        for c in criteria:
            if c.rule is None:
                built.append(judged[c.id])
                continue
            value = next(answer)
            if isinstance(value, tuple):  # unknown: why
                missing, notes = value
                note = " ".join(notes) if notes else None
                built.append(CriterionResult(c.id, c.kind, c.text, "unknown", missing, note))
            else:
                built.append(results[c.id][0 if value else 1])
        evaluation = decide(built)
        if len(kept) >= EVALUATIONS_KEPT:
            kept.clear()
        kept[answers] = evaluation
        return evaluation

    def evaluate(observations: Mapping[str, Any], submitted_on: date) -> Evaluation:
        get = observations.get
        reference: Any = None
        age: Any = None
        if reads_reference:  # as environment(): the consent date, else the submission date; age at it
            consent = get("consent_date")
            if consent is None:
                reference = submitted_on
            else:
                reference = consent if isinstance(consent, date) else date.fromisoformat(str(consent))
            if reads_age:
                birth = get("birth_date")
                if birth is None:
                    age = get("age_years")
                else:
                    if not isinstance(birth, date):
                        birth = date.fromisoformat(str(birth))
                    age = (
                        reference.year
                        - birth.year
                        - ((reference.month, reference.day) < (birth.month, birth.day))
                    )
        answered: list[Value | Why] = []
        for answer, explain in steps:
            value = answer(get, reference, age)
            if value is None:
                value = explain(get, reference, age)
            answered.append(value)
        answers = tuple(answered)
        found = kept.get(answers)
        return build(answers) if found is None else found

    return evaluate


@dataclass(frozen=True)
class CompiledCriteria:
    """A criteria set ready to evaluate many applicants; compile once per version.

    `evaluate(observations, submitted_on)` answers the Evaluation: the decision and a result per criterion,
    in order (decide() states the decision rule). It is a function made for this set when the set is
    made, held as an attribute rather than defined as a method: one call less per applicant."""

    trial_id: str
    criteria: tuple[CompiledCriterion, ...]
    variables: frozenset[str]
    reads_reference: bool = True  # some rule reads the reference date (a window) or age
    evaluate: Evaluate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "evaluate", plan(self.criteria, self.reads_reference, AGE in self.variables))
