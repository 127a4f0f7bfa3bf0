"""Turns rule expressions (plain data, never Python source) into evaluator closures.

Expressions, each a mapping with one operator:
  {all: [...]}  {any: [...]}  {not: expr}  {if: expr, then: expr}  {review: expr, note: "..."}
  {var: NAME, eq|ne|lt|le|gt|ge: VALUE}  {var: NAME, in|not_in: [VALUES]}  {var: NAME, between: [LO, HI]}
  {var: DATE, within: {days|weeks|months|years: N}}   the date is no earlier than N before the reference date
  {var: DATE, older_than: {days|weeks|months|years: N}}   the date is more than N before the reference date
A variable that is absent makes its comparison unknown and is listed as missing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

from pydantic import ValidationError

from services.eligibility.document import CriteriaDocument
from services.eligibility.logic import (
    FALSE,
    TRUE,
    Rule,
    Verdict,
    all_of,
    any_of,
    negation,
    review_when,
    unknown,
)
from services.eligibility.model import (
    REFERENCE_DATE,
    CompiledCriteria,
    CompiledCriterion,
    VariableSpec,
)

DERIVED = {"age": VariableSpec("int")}
# What a coordinator must send when a derived variable is missing.
SOURCES = {"age": frozenset(("birth_date", "age_years"))}
ORDERING = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}
EQUALITY = {"eq": operator.eq, "ne": operator.ne}
PERIODS = ("days", "weeks", "months", "years")
# Longest window a rule may ask for, per unit: a century, so date arithmetic can never overflow.
LONGEST = {"days": 36_525, "weeks": 5_218, "months": 1_200, "years": 100}


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


class _Compiler:
    def __init__(self, variables: Mapping[str, VariableSpec]) -> None:
        self.variables = {**variables, **DERIVED}
        self.used: set[str] = set()

    def compile(self, node: Any) -> Rule:
        if not isinstance(node, dict):
            raise CriteriaError(f"expected an expression mapping, got {node!r}")
        if "var" in node:
            return self._comparison(node)
        keys = set(node)
        if keys == {"all"} or keys == {"any"}:
            ((name, items),) = node.items()
            if not isinstance(items, list) or not items:
                raise CriteriaError(f"`{name}` takes a non-empty list")
            rules = [self.compile(item) for item in items]
            return all_of(rules) if name == "all" else any_of(rules)
        if keys == {"not"}:
            return negation(self.compile(node["not"]))
        if keys == {"if", "then"}:
            return any_of([negation(self.compile(node["if"])), self.compile(node["then"])])
        if keys == {"review", "note"}:
            if not isinstance(node["note"], str) or not node["note"].strip():
                raise CriteriaError("`review` needs a non-empty `note` for the reviewer")
            return review_when(self.compile(node["review"]), node["note"].strip())
        raise CriteriaError(f"unknown expression {sorted(keys)}")

    def _spec(self, name: Any) -> VariableSpec:
        if not isinstance(name, str) or name not in self.variables:
            raise CriteriaError(f"unknown variable {name!r}")
        self.used.add(name)
        return self.variables[name]

    def _comparison(self, node: dict[str, Any]) -> Rule:
        name = node["var"]
        spec = self._spec(name)
        ops = set(node) - {"var"}
        if len(ops) != 1:
            raise CriteriaError(f"`var: {name}` needs exactly one operator, got {sorted(ops)}")
        op = ops.pop()
        argument = node[op]
        if op in EQUALITY:
            self._check_value(name, spec, argument)
            return _compare(name, EQUALITY[op], argument)
        if op in ORDERING:
            self._check_number(name, spec, argument)
            return _compare(name, ORDERING[op], argument)
        if op == "between":
            if not isinstance(argument, list) or len(argument) != 2:
                raise CriteriaError(f"`between` on {name} takes [low, high]")
            for bound in argument:
                self._check_number(name, spec, bound)
            low, high = argument
            return _compare(name, lambda v, _: low <= v <= high, None)
        if op in ("in", "not_in"):
            if not isinstance(argument, list) or not argument:
                raise CriteriaError(f"`{op}` on {name} takes a non-empty list")
            for item in argument:
                self._check_value(name, spec, item)
            members = frozenset(argument)
            test = operator.contains if op == "in" else (lambda s, v: v not in s)
            return _compare(name, lambda v, _: test(members, v), None)
        if op in ("within", "older_than"):
            return self._window(name, spec, op, argument)
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
    def _window(name: str, spec: VariableSpec, op: str, period: Any) -> Rule:
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
        missing = _missing_names(name)

        def evaluate(env: Mapping[str, Any]) -> Verdict:
            value = env.get(name)
            if value is None:
                return unknown(missing)
            when = value if isinstance(value, date) else date.fromisoformat(value)
            limit = period_before(env[REFERENCE_DATE], period)
            inside = when >= limit if op == "within" else when < limit
            return TRUE if inside else FALSE

        return evaluate


def _missing_names(name: str) -> frozenset[str]:
    return SOURCES.get(name, frozenset((name,)))


def _compare(name: str, test: Callable[[Any, Any], bool], argument: Any) -> Rule:
    missing = _missing_names(name)

    def evaluate(env: Mapping[str, Any]) -> Verdict:
        value = env.get(name)
        if value is None:
            return unknown(missing)
        return TRUE if test(value, argument) else FALSE

    return evaluate


def compile_criteria(document: Mapping[str, Any], variables: Mapping[str, VariableSpec]) -> CompiledCriteria:
    """Validate a criteria document and compile each rule; raises CriteriaError naming what is wrong."""
    try:
        parsed = CriteriaDocument.model_validate(document)
    except ValidationError as exc:
        raise CriteriaError(str(exc)) from exc
    compiler = _Compiler(variables)
    compiled = []
    for spec in parsed.criteria:
        try:
            rule = compiler.compile(spec.rule) if spec.rule is not None else None
        except CriteriaError as exc:
            raise CriteriaError(f"criterion {spec.id}: {exc}") from exc
        compiled.append(CompiledCriterion(spec.id, spec.kind, spec.text, rule, spec.reading))
    return CompiledCriteria(parsed.trial_id.upper(), tuple(compiled), frozenset(compiler.used))
