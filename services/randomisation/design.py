"""A randomisation scheme, pure: its stratum labels, its commitment, an uploaded allocation list, and
the next allocation given what is already allocated.

A stratum is labelled by its variables in the scheme's order, `site=S1;diabetes=type2` (`all` for a
scheme without strata); an uploaded list's `stratum` column uses the same labels.

The commitment is `sha256:` and the hex SHA-256 of a canonical JSON (keys sorted, no spaces) of the
algorithm, the method, the arms with their ratios, the strata, the block sizes, the factors with their
weights, the probability, the imbalance measure, the seed (hex; the generated list and every
minimisation draw follow from it) and, for an uploaded list, the list (`[sequence, stratum, arm]` rows by
sequence). An uploaded list still gets a random seed: a salt, without which a short list of small blocks
could be found by trying every permutation against the hash. The commitment is printed when the scheme
is set; anyone holding it can later check the seed and list they are shown.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from services.randomisation import blocks, minimisation
from services.randomisation.blocks import Arm
from services.randomisation.minimisation import Factor, Tallies

SITE = "site"
NO_STRATA = "all"
MAX_LIST_ROWS = 100_000
# What a level can be: a site id, an enum value, true/false, a whole number.
LEVEL = re.compile(r"[A-Za-z0-9._-]+")
MAX_SEQUENCE = 999_999_999  # stored in a 32-bit integer column

Method = Literal["permuted_blocks", "minimisation"]


class ListError(ValueError):
    """An uploaded allocation list that cannot be used; `row` is its line number (the header is 1)."""

    def __init__(self, row: int | None, detail: str) -> None:
        super().__init__(f"row {row}: {detail}" if row is not None else detail)
        self.row = row


class Exhausted(LookupError):
    """An uploaded list has no more entries for a stratum."""


@dataclass(frozen=True)
class ListEntry:
    sequence: int
    stratum: str
    arm_id: str


@dataclass(frozen=True)
class Scheme:
    method: Method
    arms: tuple[Arm, ...]
    strata: tuple[str, ...] = ()
    block_sizes: tuple[int, ...] = ()
    factors: tuple[Factor, ...] = ()
    probability: float = 0.85
    imbalance: Literal["range", "variance"] = "range"
    seed: bytes | None = None  # draws the generated list and minimisation; salts an uploaded list
    listed: tuple[ListEntry, ...] = field(default=(), repr=False)  # an uploaded list

    @property
    def algorithm(self) -> str:
        return blocks.ALGORITHM if self.method == "permuted_blocks" else minimisation.ALGORITHM

    @property
    def drawn_from(self) -> bytes:
        """The seed the draws come from; a scheme without one cannot draw."""
        if self.seed is None:
            raise ValueError("this scheme holds no seed")
        return self.seed

    @property
    def variables(self) -> tuple[str, ...]:
        """What an applicant must have known before enrolment: the strata or the factors."""
        if self.method == "permuted_blocks":
            return self.strata
        return tuple(factor.variable for factor in self.factors)

    def stratum(self, levels: Mapping[str, str]) -> str:
        """The label of the stratum (or, for minimisation, the factor levels) of these levels."""
        variables = self.variables
        return ";".join(f"{name}={levels[name]}" for name in variables) if variables else NO_STRATA

    def commitment(self) -> str:
        return "sha256:" + hashlib.sha256(canonical(self.committed()).encode()).hexdigest()

    def committed(self) -> dict[str, Any]:
        """What the commitment fixes, in the order it is hashed."""
        fixed: dict[str, Any] = {
            "algorithm": self.algorithm,
            "method": self.method,
            "arms": [[arm.arm_id, arm.ratio] for arm in self.arms],
            "strata": list(self.strata),
            "block_sizes": list(self.block_sizes),
            "factors": [[factor.variable, factor.weight] for factor in self.factors],
            "probability": self.probability,
            "imbalance": self.imbalance,
        }
        fixed["seed"] = (self.seed or b"").hex()
        if self.listed:
            fixed["list"] = [[entry.sequence, entry.stratum, entry.arm_id] for entry in self.listed]
        return fixed


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(frozen=True)
class Allocated:
    """One participant's allocation: the randomisation number, the stratum, the place in it, the arm."""

    sequence: int
    stratum: str
    position: int
    arm_id: str


def allocate(
    scheme: Scheme,
    levels: Mapping[str, str],
    allocated_before: int,
    in_stratum_before: int,
    tallies: Tallies,
) -> Allocated:
    """The next participant's allocation. `allocated_before` counts the trial's earlier allocations,
    `in_stratum_before` those of this stratum; `tallies` are minimisation's counts by factor level.
    Raises Exhausted when an uploaded list has nothing left for the stratum."""
    stratum = scheme.stratum(levels)
    position = in_stratum_before + 1
    if scheme.method == "minimisation":
        sequence = allocated_before + 1
        choice = minimisation.choose(
            scheme.arms, scheme.factors, tallies, levels, scheme.probability, scheme.drawn_from, sequence,
            scheme.imbalance,
        )  # fmt: skip
        return Allocated(sequence, stratum, position, choice.arm_id)
    if scheme.listed:
        entries = [entry for entry in scheme.listed if entry.stratum == stratum]
        if len(entries) < position:
            raise Exhausted(f"the allocation list has no entry left for stratum {stratum}")
        entry = entries[position - 1]
        return Allocated(entry.sequence, stratum, position, entry.arm_id)
    placed = blocks.arm_at(scheme.drawn_from, stratum, position, scheme.arms, scheme.block_sizes)
    return Allocated(allocated_before + 1, stratum, position, placed.arm_id)


def stratum_labels_valid(scheme: Scheme, label: str) -> bool:
    """Whether a list's stratum label names the scheme's variables in order, each with a value that a
    level can be (whether that site or value exists is not checked: such a stratum is never used)."""
    if not scheme.strata:
        return label == NO_STRATA
    parts = label.split(";")
    return len(parts) == len(scheme.strata) and all(
        part.partition("=")[0] == name and LEVEL.fullmatch(part.partition("=")[2])
        for part, name in zip(parts, scheme.strata, strict=True)
    )


def parse_list(text: str, scheme: Scheme) -> tuple[ListEntry, ...]:
    """An uploaded list, CSV `sequence,stratum,arm` with that header: sequences unique whole numbers,
    strata labelled as the scheme's, arms among its arms. Sorted by sequence."""
    try:
        return _parsed(csv.reader(io.StringIO(text.strip())), scheme)
    except csv.Error as exc:  # a NUL byte, a field past the csv module's size limit
        raise ListError(None, f"not readable as CSV ({exc})") from None


def _parsed(reader: Any, scheme: Scheme) -> tuple[ListEntry, ...]:
    header = next(reader, None)
    if header is None or [cell.strip().lower() for cell in header] != ["sequence", "stratum", "arm"]:
        raise ListError(1, "the header must be sequence,stratum,arm")
    arms = {arm.arm_id for arm in scheme.arms}
    entries: list[ListEntry] = []
    seen: set[int] = set()
    for line, row in enumerate(reader, start=2):
        entries.append(_entry(line, row, scheme, arms, seen))
        if len(entries) > MAX_LIST_ROWS:
            raise ListError(line, f"a list holds at most {MAX_LIST_ROWS} rows")
    if not entries:
        raise ListError(None, "the list has no rows")
    return tuple(sorted(entries, key=lambda entry: entry.sequence))


def _entry(line: int, row: Sequence[str], scheme: Scheme, arms: set[str], seen: set[int]) -> ListEntry:
    if len(row) != 3:
        raise ListError(line, f"expected 3 columns, found {len(row)}")
    sequence_text, stratum, arm_id = (cell.strip() for cell in row)
    if (
        not (sequence_text.isascii() and sequence_text.isdigit())
        or not 1 <= int(sequence_text) <= MAX_SEQUENCE
    ):
        raise ListError(
            line, f"sequence must be a whole number from 1 to {MAX_SEQUENCE}, not {sequence_text[:20]!r}"
        )
    sequence = int(sequence_text)
    if sequence in seen:
        raise ListError(line, f"sequence {sequence} appears twice")
    seen.add(sequence)
    if not stratum_labels_valid(scheme, stratum):
        expected = ";".join(f"{name}=<value>" for name in scheme.strata) or NO_STRATA
        raise ListError(line, f"stratum {stratum[:80]!r} is not labelled as {expected}")
    if arm_id not in arms:
        raise ListError(
            line, f"arm {arm_id[:80]!r} is not one of the scheme's arms ({', '.join(sorted(arms))})"
        )
    return ListEntry(sequence, stratum, arm_id)
