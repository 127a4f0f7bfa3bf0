"""Pocock-Simon minimisation (algorithm `accrual-pocock-simon/1`).

For a new participant and each candidate arm k: for every factor, take the counts of earlier
participants at the newcomer's level of that factor in each arm, add the newcomer to arm k, divide each
arm's count by its allocation ratio, and measure the spread (range: max - min, or variance: the
population variance); the candidate's imbalance G_k is the weighted sum over the factors. The arms of
least G form the preferred set (for the first participant: every arm). With probability p (default
0.85) the arm comes from the preferred set, otherwise from the others; within either set an arm is
drawn in proportion to its ratio. When every arm is preferred (the first participant, or a perfect
tie), it is simple randomisation by ratio: with unequal ratios the ratio-adjusted scores of an empty
trial differ, and without that rule the first participant would go to the larger arm with probability p.

Each participant's draws come from the stream `minimisation|<sequence>`: the first draw decides between
the sets (uniform < p), the second picks the arm within it. A factor is listed once, so a site is never
counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from services.randomisation.blocks import Arm
from services.randomisation.draws import Draws

ALGORITHM = "accrual-pocock-simon/1"

# factor -> level -> arm -> participants allocated there
Tallies = Mapping[str, Mapping[str, Mapping[str, int]]]


@dataclass(frozen=True)
class Factor:
    variable: str
    weight: float


def _spread(values: Sequence[float], measure: str) -> float:
    if measure == "variance":
        mean = sum(values) / len(values)
        return sum((value - mean) ** 2 for value in values) / len(values)
    return max(values) - min(values)


def imbalances(
    arms: Sequence[Arm],
    factors: Sequence[Factor],
    tallies: Tallies,
    levels: Mapping[str, str],
    measure: str = "range",
) -> dict[str, float]:
    """G_k for each candidate arm k: the weighted spread it would leave across the newcomer's levels."""
    scores: dict[str, float] = {}
    for candidate in arms:
        total = 0.0
        for factor in factors:
            at_level = tallies.get(factor.variable, {}).get(levels[factor.variable], {})
            adjusted = [
                (at_level.get(arm.arm_id, 0) + (arm.arm_id == candidate.arm_id)) / arm.ratio for arm in arms
            ]
            total += factor.weight * _spread(adjusted, measure)
        scores[candidate.arm_id] = total
    return scores


@dataclass(frozen=True)
class Choice:
    arm_id: str
    scores: dict[str, float]
    preferred: tuple[str, ...]
    followed_preference: bool


def choose(
    arms: Sequence[Arm],
    factors: Sequence[Factor],
    tallies: Tallies,
    levels: Mapping[str, str],
    probability: float,
    seed: bytes,
    sequence: int,
    measure: str = "range",
) -> Choice:
    """The arm of participant number `sequence`, reproducible from the seed."""
    scores = imbalances(arms, factors, tallies, levels, measure)
    least = min(scores.values())
    # Scores are sums of a few quotients: compare with a tolerance, not bit for bit.
    preferred = [arm for arm in arms if scores[arm.arm_id] - least < 1e-9]
    if not _anyone(tallies):  # the first participant: simple randomisation, whatever the ratio
        preferred = list(arms)
    others = [arm for arm in arms if arm not in preferred]
    draws = Draws(seed, f"minimisation|{sequence}")
    follow = draws.uniform() < probability
    pool = preferred if follow or not others else others
    arm_id = draws.weighted([arm.arm_id for arm in pool], [arm.ratio for arm in pool])
    return Choice(arm_id, scores, tuple(arm.arm_id for arm in preferred), follow or not others)


def _anyone(tallies: Tallies) -> bool:
    return any(count for factor in tallies.values() for level in factor.values() for count in level.values())


def tally(tallies: dict[str, dict[str, dict[str, int]]], levels: Mapping[str, str], arm_id: str) -> None:
    """Count an allocated participant at each of its factor levels."""
    for variable, level in levels.items():
        at_level = tallies.setdefault(variable, {}).setdefault(level, {})
        at_level[arm_id] = at_level.get(arm_id, 0) + 1
