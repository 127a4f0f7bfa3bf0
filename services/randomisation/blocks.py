"""Permuted blocks within a stratum, generated from a seed (algorithm `accrual-permuted-blocks/1`).

Per stratum, block k (from 1) has a size drawn from the configured sizes by the stream
`<stratum>|sizes` (one draw per block, in order), and its arms, each repeated ratio x size / ratio sum
times in the order the scheme lists them, shuffled by Fisher-Yates with the stream `<stratum>|block|<k>`
(for i from the last place down to 1, swap place i with place below(i + 1)). So the arm at any position
needs the sizes before it and one shuffle, and every block ends balanced to the ratio.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from services.randomisation.draws import Draws

ALGORITHM = "accrual-permuted-blocks/1"


@dataclass(frozen=True)
class Arm:
    arm_id: str
    ratio: int


def block_sizes(seed: bytes, stratum: str, sizes: Sequence[int]) -> Iterator[int]:
    """The sizes of the stratum's blocks, in order, without end."""
    draws = Draws(seed, f"{stratum}|sizes")
    while True:
        yield sizes[draws.below(len(sizes))]


def block(seed: bytes, stratum: str, number: int, arms: Sequence[Arm], size: int) -> list[str]:
    """Block `number` (from 1) of the stratum: each arm ratio x size / ratio sum times, shuffled."""
    repeats = size // sum(arm.ratio for arm in arms)
    items = [arm.arm_id for arm in arms for _ in range(arm.ratio * repeats)]
    draws = Draws(seed, f"{stratum}|block|{number}")
    for i in range(len(items) - 1, 0, -1):
        j = draws.below(i + 1)
        items[i], items[j] = items[j], items[i]
    return items


@dataclass(frozen=True)
class Placed:
    """Where a position of the stratum's list falls: its block's number, that block, and the arm."""

    block_number: int
    block: list[str]
    arm_id: str


def arm_at(seed: bytes, stratum: str, position: int, arms: Sequence[Arm], sizes: Sequence[int]) -> Placed:
    """The arm at `position` (from 1) of the stratum's list."""
    if position < 1:
        raise ValueError("positions start at 1")
    start = 0  # positions before the current block
    for number, size in enumerate(block_sizes(seed, stratum, sizes), start=1):
        if position <= start + size:
            items = block(seed, stratum, number, arms, size)
            return Placed(number, items, items[position - start - 1])
        start += size
    raise AssertionError("unreachable: block_sizes never ends")


def stratum_list(
    seed: bytes, stratum: str, length: int, arms: Sequence[Arm], sizes: Sequence[int]
) -> list[list[str]]:
    """The stratum's first blocks, enough to cover `length` positions (for tests and exports)."""
    blocks: list[list[str]] = []
    covered = 0
    for number, size in enumerate(block_sizes(seed, stratum, sizes), start=1):
        if covered >= length:
            return blocks
        blocks.append(block(seed, stratum, number, arms, size))
        covered += size
    raise AssertionError("unreachable")
