"""Which missing observation would settle an undecided application, found by trying its answers.

For each observation an unknown criterion is missing, every probe value (each answer of a yes/no or an
enumeration; a spread of values across a number's range or a date's plausible past) is put through the
same compiled criteria: the criteria that are known whatever the answer are what the observation
settles, and it settles the decision when no answer leaves the application in needs_review. No
heuristics about which test matters: the rules say it.

Pure: no I/O, only the compiled criteria's `evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from services.eligibility.model import CompiledCriteria


@dataclass(frozen=True)
class Settling:
    """What knowing one missing observation would settle, whatever its value."""

    variable: str
    settles_criteria: tuple[str, ...]
    settles_decision: bool


def settling(
    compiled: CompiledCriteria,
    observations: Mapping[str, Any],
    submitted_on: date,
    probes: Mapping[str, Sequence[Any]],
) -> list[Settling]:
    """Each observation the undecided criteria are missing (that `probes` can answer), most settling
    first: the decision before the number of criteria, then the name."""
    evaluation = compiled.evaluate(observations, submitted_on)
    unknown = [r for r in evaluation.results if r.outcome == "unknown"]
    missing = sorted({name for r in unknown for name in r.missing if name in probes})
    unknown_ids = [r.id for r in unknown]
    found = []
    for name in missing:
        settled = set(unknown_ids)
        decided = True
        for value in probes[name]:
            tried = compiled.evaluate({**observations, name: value}, submitted_on)
            still = {r.id for r in tried.results if r.outcome == "unknown"}
            settled -= still
            decided = decided and tried.decision != "needs_review"
        found.append(Settling(name, tuple(i for i in unknown_ids if i in settled), decided))
    return sorted(found, key=lambda s: (not s.settles_decision, -len(s.settles_criteria), s.variable))
