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
