"""Turns rule expressions (plain data, never Python source) into evaluator closures.

Expressions, each a mapping with one operator:
  {all: [...]}  {any: [...]}  {not: expr}  {if: expr, then: expr}  {review: expr, note: "..."}
  {reflex: expr, indicated_by: expr}   a confirmatory test's result, done only when a routine test calls
      for it (HBV DNA after a positive HBsAg): its value when known; when absent, false if the routine
      test did not call for it (`indicated_by` false: nothing to confirm), else unknown
  {var: NAME, eq|ne|lt|le|gt|ge: VALUE}  {var: NAME, in|not_in: [VALUES]}  {var: NAME, between: [LO, HI]}
  {var: DATE, within: {days|weeks|months|years: N}}   the date is no earlier than N before the reference date
  {var: DATE, older_than: {days|weeks|months|years: N}}   the date is more than N before the reference date
A variable that is absent makes its comparison unknown and is listed as missing.

Each rule becomes a pair of closures built from its parsed tree, one per node, with the operator and its
constants bound when the criteria are compiled (see logic.py, "as compiled rules run it"): `test` answers
True, False or None and allocates nothing; `explain` answers the missing names and reviewer notes of an
unknown answer (a criterion whose whole rule is a review answers its note at once: logic.review_answer).
Nothing is generated as source text and nothing is eval'd.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

from pydantic import ValidationError

from services.eligibility.document import CriteriaDocument
from services.eligibility.logic import (
    Answer,
    Explain,
    Getter,
    Test,
    Value,
    as_rule,
    explain_each,
    explain_missing,
    explain_reflex,
    explain_review,
    kleene_and,
    kleene_implies,
    kleene_not,
    kleene_or,
    kleene_reflex,
    kleene_review,
    review_answer,
)
from services.eligibility.model import (
    AGE,
    REFERENCE_DATE,
    CompiledCriteria,
    CompiledCriterion,
    VariableSpec,
)

DERIVED = {AGE: VariableSpec("int")}
# What a coordinator must send when a derived variable is missing.
SOURCES = {AGE: frozenset(("birth_date", "age_years"))}
ORDERING = ("lt", "le", "gt", "ge")
EQUALITY = ("eq", "ne")
PERIODS = ("days", "weeks", "months", "years")
# Longest window a rule may ask for, per unit: a century, so date arithmetic can never overflow.
LONGEST = {"days": 36_525, "weeks": 5_218, "months": 1_200, "years": 100}
# Reference dates whose window limits one date comparison keeps (then it starts over).
LIMITS_KEPT = 512

Compiled = tuple[Test, Explain]


class CriteriaError(ValueError):
    """A criteria document that cannot be compiled; the message names the criterion and the problem."""


def _months_before(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 - months
    year, month = divmod(total, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def period_before(reference: date, period: Mapping[str, int]) -> date:
    """The reference date moved back by one period, e.g. {months: 1}; calendar months and years."""
    ((unit, amount),) = period.items()
    if unit == "days":
        return reference - timedelta(days=amount)
    if unit == "weeks":
        return reference - timedelta(weeks=amount)
    return _months_before(reference, amount * (12 if unit == "years" else 1))


# ---- comparisons on an observation, one closure per operator with its constant bound ----
# Each answers None when the observation is absent (or None), else exactly True or False (the combinators
# test identity): the truth of the comparison, as `TRUE if test(value, argument) else FALSE` did.


def _eq(name: str, constant: Any) -> Test:
    def test(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        return True if value == constant else False  # noqa: SIM210

    return test


def _ne(name: str, constant: Any) -> Test:
    def test(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        return True if value != constant else False  # noqa: SIM210

    return test


def _lt(name: str, constant: Any) -> Test:
    def test(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        return True if value < constant else False  # noqa: SIM210

    return test


def _le(name: str, constant: Any) -> Test:
    def test(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        return True if value <= constant else False  # noqa: SIM210

    return test


def _gt(name: str, constant: Any) -> Test:
    def test(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        return True if value > constant else False  # noqa: SIM210

    return test


def _ge(name: str, constant: Any) -> Test:
    def test(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        return True if value >= constant else False  # noqa: SIM210

    return test


def _between(name: str, bounds: tuple[Any, Any]) -> Test:
    low, high = bounds

    def test(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        return True if low <= value <= high else False  # noqa: SIM210

    return test


def _in(name: str, members: frozenset[Any]) -> Test:
    def test(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        return True if value in members else False  # noqa: SIM210

    return test


def _not_in(name: str, members: frozenset[Any]) -> Test:
    def test(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        return True if value not in members else False  # noqa: SIM210

    return test


COMPARISONS: dict[str, Callable[[str, Any], Test]] = {
    "eq": _eq,
    "ne": _ne,
    "lt": _lt,
    "le": _le,
    "gt": _gt,
    "ge": _ge,
    "between": _between,
    "in": _in,
    "not_in": _not_in,
}

# The same comparisons on the derived age, which arrives as its own argument (rarely read: one generic form).
PREDICATES: dict[str, Callable[[Any], Callable[[Any], bool]]] = {
    "eq": lambda c: lambda v: v == c,
    "ne": lambda c: lambda v: v != c,
    "lt": lambda c: lambda v: v < c,
    "le": lambda c: lambda v: v <= c,
    "gt": lambda c: lambda v: v > c,
    "ge": lambda c: lambda v: v >= c,
    "between": lambda c: lambda v: c[0] <= v <= c[1],
    "in": lambda c: lambda v: v in c,
    "not_in": lambda c: lambda v: v not in c,
}


def _on_age(predicate: Callable[[Any], bool]) -> Test:
    def test(get: Getter, reference: Any, age: Any) -> Value:
        if age is None:
            return None
        return True if predicate(age) else False  # noqa: SIM210

    return test


def _comparison_test(name: str, op: str, constant: Any) -> Test:
    if name in DERIVED:
        return _on_age(PREDICATES[op](constant))
    return COMPARISONS[op](name, constant)


def _window_test(name: str, period: Mapping[str, int], within: bool) -> Test:
    """`within`: the date is no earlier than the limit; `older_than`: before it. The limit, one period before
    the reference date, is kept per reference date (most applicants of a batch share one)."""
    limits: dict[Any, date] = {}

    def limit_for(reference: Any) -> date:
        limit = limits.get(reference)
        if limit is None:
            limit = period_before(reference, period)
            if len(limits) >= LIMITS_KEPT:
                limits.clear()
            limits[reference] = limit
        return limit

    if within:

        def test(get: Getter, reference: Any, age: Any) -> Value:
            value = get(name)
            if value is None:
                return None
            when = value if isinstance(value, date) else date.fromisoformat(value)
            limit = limits.get(reference) or limit_for(reference)
            return True if when >= limit else False  # noqa: SIM210

        return test

    def older(get: Getter, reference: Any, age: Any) -> Value:
        value = get(name)
        if value is None:
            return None
        when = value if isinstance(value, date) else date.fromisoformat(value)
        limit = limits.get(reference) or limit_for(reference)
        return True if when < limit else False  # noqa: SIM210

    return older


class _Compiler:
    def __init__(self, variables: Mapping[str, VariableSpec]) -> None:
        self.variables = {**variables, **DERIVED}
        self.used: set[str] = set()
        self.windows = False

    def compile(self, node: Any) -> Compiled:
        if not isinstance(node, dict):
            raise CriteriaError(f"expected an expression mapping, got {node!r}")
        if "var" in node:
            return self._comparison(node)
        keys = set(node)
        if keys == {"all"} or keys == {"any"}:
            ((name, items),) = node.items()
            if not isinstance(items, list) or not items:
                raise CriteriaError(f"`{name}` takes a non-empty list")
            parts = [self.compile(item) for item in items]
            if len(parts) == 1:
                return parts[0]
            tests = [test for test, _ in parts]
            return (kleene_and(tests) if name == "all" else kleene_or(tests)), explain_each(parts)
        if keys == {"not"}:
            test, explain = self.compile(node["not"])
            return kleene_not(test), explain  # NOT keeps an unknown's names and notes
        if keys == {"if", "then"}:
            condition, consequence = self.compile(node["if"]), self.compile(node["then"])
            # any_of([negation(if), then]); negation(if) is unknown exactly when `if` is
            return kleene_implies(condition[0], consequence[0]), explain_each([condition, consequence])
        if keys == {"reflex", "indicated_by"}:
            result, indication = self.compile(node["reflex"]), self.compile(node["indicated_by"])
            return kleene_reflex(result[0], indication[0]), explain_reflex(
                indication[0], indication[1], result[1]
            )
        if keys == {"review", "note"}:
            note = self._note(node)
            test, explain = self.compile(node["review"])
            return kleene_review(test), explain_review(test, explain, note)
        raise CriteriaError(f"unknown expression {sorted(keys)}")

    def rule(self, node: Any) -> tuple[Answer, Explain]:
        """A criterion's whole rule: its test, or for a review the answer that gives the note at once."""
        if not isinstance(node, dict) or set(node) != {"review", "note"}:
            return self.compile(node)
        note = self._note(node)
        test, explain = self.compile(node["review"])
        return review_answer(test, explain, note), explain_review(test, explain, note)

    @staticmethod
    def _note(node: dict[str, Any]) -> str:
        if not isinstance(node["note"], str) or not node["note"].strip():
            raise CriteriaError("`review` needs a non-empty `note` for the reviewer")
        return node["note"].strip()

    def _spec(self, name: Any) -> VariableSpec:
        if not isinstance(name, str) or name not in self.variables:
            raise CriteriaError(f"unknown variable {name!r}")
        self.used.add(name)
        return self.variables[name]

    def _comparison(self, node: dict[str, Any]) -> Compiled:
        name = node["var"]
        spec = self._spec(name)
        ops = set(node) - {"var"}
        if len(ops) != 1:
            raise CriteriaError(f"`var: {name}` needs exactly one operator, got {sorted(ops)}")
        op = ops.pop()
        argument = node[op]
        explain = explain_missing(SOURCES.get(name, frozenset((name,))))
        if op in EQUALITY:
            self._check_value(name, spec, argument)
            return _comparison_test(name, op, argument), explain
        if op in ORDERING:
            self._check_number(name, spec, argument)
            return _comparison_test(name, op, argument), explain
        if op == "between":
            if not isinstance(argument, list) or len(argument) != 2:
                raise CriteriaError(f"`between` on {name} takes [low, high]")
            for bound in argument:
                self._check_number(name, spec, bound)
            return _comparison_test(name, op, tuple(argument)), explain
        if op in ("in", "not_in"):
            if not isinstance(argument, list) or not argument:
                raise CriteriaError(f"`{op}` on {name} takes a non-empty list")
            for item in argument:
                self._check_value(name, spec, item)
            return _comparison_test(name, op, frozenset(argument)), explain
        if op in ("within", "older_than"):
            self._check_window(name, spec, op, argument)
            self.windows = True
            return _window_test(name, dict(argument), op == "within"), explain
        raise CriteriaError(f"unknown operator `{op}` on {name}")

    def _check_value(self, name: str, spec: VariableSpec, value: Any) -> None:
        if spec.kind == "bool" and not isinstance(value, bool):
            raise CriteriaError(f"{name} is true or false, not {value!r}")
        if spec.kind == "enum" and value not in spec.values:
            raise CriteriaError(f"{name} takes one of {list(spec.values)}, not {value!r}")
        if spec.kind in ("int", "float"):
            self._check_number(name, spec, value)
        if spec.kind == "date":
            raise CriteriaError(f"{name} is a date: use `within` or `older_than`")

    @staticmethod
    def _check_number(name: str, spec: VariableSpec, value: Any) -> None:
        if spec.kind not in ("int", "float"):
            raise CriteriaError(f"{name} is not a number; it cannot be ordered")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise CriteriaError(f"{name} compares with numbers (finite ones), not {value!r}")

    @staticmethod
    def _check_window(name: str, spec: VariableSpec, op: str, period: Any) -> None:
        if spec.kind != "date":
            raise CriteriaError(f"`{op}` needs a date variable; {name} is {spec.kind}")
        valid = isinstance(period, dict) and len(period) == 1 and next(iter(period)) in PERIODS
        amount = next(iter(period.values())) if valid else None
        unit = next(iter(period)) if valid else ""
        if (
            not valid
            or isinstance(amount, bool)
            or not isinstance(amount, int)
            or not 0 <= amount <= LONGEST[unit]
        ):
            raise CriteriaError(
                f"`{op}` on {name} takes one of {list(PERIODS)} with a whole number from 0 to a century"
            )


def compile_criteria(document: Mapping[str, Any], variables: Mapping[str, VariableSpec]) -> CompiledCriteria:
    """Validate a criteria document and compile each rule; raises CriteriaError naming what is wrong."""
    try:
        parsed = CriteriaDocument.model_validate(document)
    except ValidationError as exc:
        raise CriteriaError(str(exc)) from exc
    compiler = _Compiler(variables)
    compiled = []
    for spec in parsed.criteria:
        if spec.rule is None:
            compiled.append(CompiledCriterion(spec.id, spec.kind, spec.text, None, spec.reading))
            continue
        try:
            answer, explain = compiler.rule(spec.rule)
        except CriteriaError as exc:
            raise CriteriaError(f"criterion {spec.id}: {exc}") from exc
        rule = as_rule(answer, explain, REFERENCE_DATE, AGE)
        compiled.append(CompiledCriterion(spec.id, spec.kind, spec.text, rule, spec.reading, answer, explain))
    return CompiledCriteria(
        parsed.trial_id.upper(),
        tuple(compiled),
        frozenset(compiler.used),
        reads_reference=compiler.windows or AGE in compiler.used,
    )
