"""What would change an ineligible decision: a later consent date, or dated observations repeated.

Derived from the rules' own windows by evaluating the same compiled criteria with the reference date
moved (`consent_date`) and with dated observations refreshed, never from per-criterion code:

- `renew`: the dated observations (imaging, labs, other dated findings) that were too old at consent:
  dated afresh at the reference date, an excluding criterion no longer excludes. Waiting cannot cure them.
- `eligible_from`: when every excluding criterion passes at some later consent date (an event too
  recent, a symptom too short), the earliest such date, with the observations in `renew` repeated then;
  None when waiting cures nothing, or when something else would exclude at that date (an age limit).

Pure: no I/O, only the compiled criteria's `evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.eligibility.model import CompiledCriteria, CriterionResult, Evaluation

# How far ahead a later consent date is looked for: the longest window of the seed trials is 5 years.
HORIZON = timedelta(days=3653)


@dataclass(frozen=True)
class Remedies:
    eligible_from: date | None = None
    renew: tuple[str, ...] = ()


NONE = Remedies()


def _excludes(result: CriterionResult) -> bool:
    return result.outcome == ("not_met" if result.kind == "inclusion" else "met")


def _excluding(evaluation: Evaluation) -> frozenset[str]:
    return frozenset(r.id for r in evaluation.results if _excludes(r))


def _reference(observations: Mapping[str, Any], submitted_on: date) -> date:
    consent = observations.get("consent_date")
    if consent is None:
        return submitted_on
    return consent if isinstance(consent, date) else date.fromisoformat(str(consent))


def remedies(
    compiled: CompiledCriteria,
    observations: Mapping[str, Any],
    submitted_on: date,
    dated: Collection[str],
) -> Remedies:
    """The remedies of an application the criteria find ineligible; NONE for any other decision.

    `dated` names the date observations that may be repeated (not birth_date, not consent_date)."""
    evaluation = compiled.evaluate(observations, submitted_on)
    if evaluation.decision != "ineligible":
        return NONE
    excluding = _excluding(evaluation)
    reference = _reference(observations, submitted_on)
    renew = _to_renew(compiled, observations, submitted_on, dated, excluding, reference)

    def still_excluded(on: date) -> bool:
        moved = {**observations, "consent_date": on.isoformat(), **{name: on.isoformat() for name in renew}}
        return bool(_excluding(compiled.evaluate(moved, submitted_on)) & excluding)

    if not still_excluded(reference):
        return Remedies(None, renew)  # repeating the dated observations is enough: nothing to wait for
    eligible_from = _earliest(still_excluded, reference)
    if eligible_from is not None:
        moved = {**observations, "consent_date": eligible_from.isoformat()}
        moved.update({name: eligible_from.isoformat() for name in renew})
        if compiled.evaluate(moved, submitted_on).decision == "ineligible":
            eligible_from = None  # something else excludes by then
    return Remedies(eligible_from, renew)


def _to_renew(
    compiled: CompiledCriteria,
    observations: Mapping[str, Any],
    submitted_on: date,
    dated: Collection[str],
    excluding: frozenset[str],
    reference: date,
) -> tuple[str, ...]:
    """Dated observations that, dated afresh at the reference date, stop an excluding criterion
    excluding: too old at consent."""
    renew = []
    for name in sorted(dated):
        if observations.get(name) is None:
            continue
        refreshed = {**observations, name: reference.isoformat()}
        if excluding - _excluding(compiled.evaluate(refreshed, submitted_on)):
            renew.append(name)
    return tuple(renew)


def _earliest(still_excluded: Callable[[date], bool], reference: date) -> date | None:
    """The first day after `reference` on which nothing originally excluding excludes, if one comes
    within the horizon. A window that an event ages out of passes for good once it passes, so the
    answer is found by bisection."""
    low, high = reference, reference + HORIZON  # excluded at low; at high, maybe not
    if still_excluded(high):
        return None
    while (high - low).days > 1:
        middle = low + timedelta(days=(high - low).days // 2)
        if still_excluded(middle):
            low = middle
        else:
            high = middle
    return high
