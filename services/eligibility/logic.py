"""Kleene three-valued logic over verdicts that remember which variables were missing.

A verdict is (value, missing, notes): value True, False or None (unknown); `missing` names the
variables whose absence made it unknown; `notes` are reviewer notes from deliberate unknowns.
Known results carry neither, so `false AND unknown` is plainly false and `true OR unknown` plainly true.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Verdict = tuple[bool | None, frozenset[str], tuple[str, ...]]
Rule = Callable[[Mapping[str, Any]], Verdict]

NO_NAMES: frozenset[str] = frozenset()
NO_NOTES: tuple[str, ...] = ()
TRUE: Verdict = (True, NO_NAMES, NO_NOTES)
FALSE: Verdict = (False, NO_NAMES, NO_NOTES)


def unknown(missing: frozenset[str] = NO_NAMES, notes: tuple[str, ...] = NO_NOTES) -> Verdict:
    return (None, missing, notes)


def _merge_unknowns(verdicts: Sequence[Verdict]) -> Verdict:
    missing: set[str] = set()
    notes: list[str] = []
    for _, names, its_notes in verdicts:
        missing.update(names)
        notes.extend(n for n in its_notes if n not in notes)
    return (None, frozenset(missing), tuple(notes))


def all_of(rules: Sequence[Rule]) -> Rule:
    """Kleene AND: false if any is false, else unknown if any is unknown, else true."""

    def evaluate(env: Mapping[str, Any]) -> Verdict:
        unknowns: list[Verdict] = []
        for rule in rules:
            verdict = rule(env)
            if verdict[0] is False:
                return FALSE
            if verdict[0] is None:
                unknowns.append(verdict)
        return _merge_unknowns(unknowns) if unknowns else TRUE

    return evaluate


def any_of(rules: Sequence[Rule]) -> Rule:
    """Kleene OR: true if any is true, else unknown if any is unknown, else false."""

    def evaluate(env: Mapping[str, Any]) -> Verdict:
        unknowns: list[Verdict] = []
        for rule in rules:
            verdict = rule(env)
            if verdict[0] is True:
                return TRUE
            if verdict[0] is None:
                unknowns.append(verdict)
        return _merge_unknowns(unknowns) if unknowns else FALSE

    return evaluate


def negation(rule: Rule) -> Rule:
    """Kleene NOT: unknown stays unknown, with its missing variables."""

    def evaluate(env: Mapping[str, Any]) -> Verdict:
        value, missing, notes = rule(env)
        if value is None:
            return (None, missing, notes)
        return FALSE if value else TRUE

    return evaluate


def review_when(condition: Rule, note: str) -> Rule:
    """Unknown on purpose, with a note for the reviewer, when the condition holds; false when it does not."""

    def evaluate(env: Mapping[str, Any]) -> Verdict:
        value, missing, notes = condition(env)
        if value is True:
            return (None, NO_NAMES, (note,))
        if value is False:
            return FALSE
        return (None, missing, notes)

    return evaluate


# ---------------------------------------------------------------------------------------------------------
# The same logic as compiled rules run it. Verdicts above are the reference semantics; evaluating them
# allocates a tuple per node and merges frozensets. A compiled rule is instead a pair of closures over
# one applicant, each called as (get, reference date, age), `get` being the observations' own `get`:
#   test: the value alone, True, False or None (unknown), allocating nothing;
#   explain: called only where `test` answered None: why, i.e. the missing names (sorted) and the
#            reviewer notes (in order of first occurrence, no repeats) the verdict would carry.
# So a known criterion costs only its `test`, and the names and notes are gathered only for an unknown one.
# (A whole rule that is a review has an `answer` instead, that gives its note from the same evaluation.)
# ---------------------------------------------------------------------------------------------------------

Value = bool | None
Getter = Callable[[str], Any]
Test = Callable[[Getter, Any, Any], Value]
Why = tuple[tuple[str, ...], tuple[str, ...]]  # (missing names, sorted; notes)
Explain = Callable[[Getter, Any, Any], Why]
# A whole rule's answer: a Test, or, for a rule that learns why it is unknown in the same evaluation
# (a review), its value or that reason directly (never None).
Answer = Callable[[Getter, Any, Any], Value | Why]


def kleene_and(tests: Sequence[Test]) -> Test:
    """Kleene AND of values, children evaluated in order up to the first false one (as `all_of`)."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests

        def both(get: Getter, reference: Any, age: Any) -> Value:
            a = first(get, reference, age)
            if a is False:
                return False
            b = second(get, reference, age)
            if b is False:
                return False
            return a and b  # True and True, else None

        return both
    members = tuple(tests)

    def every(get: Getter, reference: Any, age: Any) -> Value:
        result: Value = True
        for member in members:
            value = member(get, reference, age)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    return every


def kleene_or(tests: Sequence[Test]) -> Test:
    """Kleene OR of values, children evaluated in order up to the first true one (as `any_of`)."""
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests

        def either(get: Getter, reference: Any, age: Any) -> Value:
            a = first(get, reference, age)
            if a is True:
                return True
            b = second(get, reference, age)
            if b is True:
                return True
            return a if a is None else b  # False or False, else None

        return either
    members = tuple(tests)

    def some(get: Getter, reference: Any, age: Any) -> Value:
        result: Value = False
        for member in members:
            value = member(get, reference, age)
            if value is True:
                return True
            if value is None:
                result = None
        return result

    return some


def kleene_not(test: Test) -> Test:
    """Kleene NOT of a value (as `negation`)."""

    def inverse(get: Getter, reference: Any, age: Any) -> Value:
        value = test(get, reference, age)
        return value if value is None else not value

    return inverse


def kleene_implies(condition: Test, consequence: Test) -> Test:
    """`if condition then consequence`: the value of any_of([negation(condition), consequence])."""

    def implies(get: Getter, reference: Any, age: Any) -> Value:
        given = condition(get, reference, age)
        if given is False:
            return True
        value = consequence(get, reference, age)
        if value is True:
            return True
        return False if value is False and given else None  # given is True or None here

    return implies


def kleene_reflex(result: Test, indication: Test) -> Test:
    """A confirmatory (reflex) test's result: its value when known; when it was not done, false if the
    routine test that would have called for it did not (nothing to confirm), else unknown."""

    def reflex(get: Getter, reference: Any, age: Any) -> Value:
        value = result(get, reference, age)
        if value is not None:
            return value
        return False if indication(get, reference, age) is False else None

    return reflex


def explain_reflex(indication: Test, indication_explain: Explain, result_explain: Explain) -> Explain:
    """Why a reflex is unknown: the routine test, when it is missing; else (it called for the reflex
    test) the reflex test's own result."""

    def why(get: Getter, reference: Any, age: Any) -> Why:
        if indication(get, reference, age) is None:
            return indication_explain(get, reference, age)
        return result_explain(get, reference, age)

    return why


def kleene_review(condition: Test) -> Test:
    """The value of review_when: false when the condition is false, otherwise unknown."""

    def review(get: Getter, reference: Any, age: Any) -> Value:
        return False if condition(get, reference, age) is False else None

    return review


def review_answer(condition: Test, condition_explain: Explain, note: str) -> Answer:
    """A review rule's answer from one evaluation of its condition: false, or why it is unknown."""
    noted: Why = ((), (note,))

    def answer(get: Getter, reference: Any, age: Any) -> Value | Why:
        value = condition(get, reference, age)
        if value is True:
            return noted
        if value is False:
            return False
        return condition_explain(get, reference, age)

    return answer


def _merged(whys: Sequence[Why]) -> Why:
    """Names and notes of several unknowns, as `_merge_unknowns`: the union, and the notes in order."""
    missing: set[str] = set()
    notes: list[str] = []
    for names, its_notes in whys:
        missing.update(names)
        notes.extend(n for n in its_notes if n not in notes)
    return (tuple(sorted(missing)), tuple(notes))


def explain_each(parts: Sequence[tuple[Test, Explain]]) -> Explain:
    """Why an AND or OR is unknown: because of each of its unknown children, in order.

    An unknown AND has no false child and an unknown OR no true one, so every child was evaluated."""
    members = tuple(parts)

    def why(get: Getter, reference: Any, age: Any) -> Why:
        whys = [reason(get, reference, age) for test, reason in members if test(get, reference, age) is None]
        return whys[0] if len(whys) == 1 else _merged(whys)

    return why


def explain_review(condition: Test, condition_explain: Explain, note: str) -> Explain:
    """Why a review is unknown: its note when the condition holds, else the condition's own reasons."""
    noted: Why = ((), (note,))

    def why(get: Getter, reference: Any, age: Any) -> Why:
        if condition(get, reference, age) is True:
            return noted
        return condition_explain(get, reference, age)

    return why


def explain_missing(names: frozenset[str]) -> Explain:
    """Why a comparison is unknown: the names a coordinator must send."""
    missing: Why = (tuple(sorted(names)), ())

    def why(get: Getter, reference: Any, age: Any) -> Why:
        return missing

    return why


def as_rule(answer: Answer, explain: Explain, reference_key: str, age_key: str) -> Rule:
    """A compiled rule as a verdict Rule over an environment (model.environment) holding the derived
    reference date and age under these keys."""

    def evaluate(env: Mapping[str, Any]) -> Verdict:
        get = env.get
        reference, age = env.get(reference_key), env.get(age_key)
        value = answer(get, reference, age)
        if value is True or value is False:
            return TRUE if value else FALSE
        missing, notes = explain(get, reference, age) if value is None else value
        return (None, frozenset(missing), notes)

    return evaluate
