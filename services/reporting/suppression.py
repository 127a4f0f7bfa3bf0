"""Small-cell suppression: which counts of a table may be published (CMS cell-size policy, RELIABILITY §5.4).

Pure: a table of named counts, the equations that tie them together (a total is the sum of its parts),
and a threshold in; the names of the cells to hide out. Nothing here knows HTTP, roles or settings.

- Primary suppression: every cell from 1 to threshold - 1 is hidden; 0 is shown as 0.
- Exempt cells (the trial-level totals: applied, enrolled) are published whatever they hold: the
  contract publishes them elsewhere anyway, so hiding them here would protect nothing.
- Virtual cells are never published but take part in an equation: a derived figure that must not be
  worked out when it is small, such as a site's applicants not enrolled (its applied minus its enrolled).
- Complementary suppression, equation by equation: when one cell alone is hidden, it equals the total
  minus the others, so the smallest other cell is hidden too; when the hidden parts of a published total
  add up to 1..threshold - 1, that sum is itself a small count, so more are hidden until it is not (or
  everything is, and the sum is the published total itself).
- Then the whole linear system is solved (exactly, over the rationals): a hidden cell that the
  published figures still fix (tables whose equations share cells, such as sites x {applied,
  enrolled}) gets another complement, until none is fixed.

What this guarantees, and the unit tests check: every published number is 0, at least the threshold,
or exempt; no hidden cell is determined by the published cells and equations together; and the hidden
parts of each equation with a published total add up to 0, at least the threshold, or that total. A
series of weekly increments is a table like any other (its equation: the weeks add up to the total),
so a cumulative figure derivable from what is published never moves by 1..threshold - 1 from one week
to the next: that would determine the week's hidden increment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

# CMS cell-size policy: no count from 1 to 10 (research §5.4); what public answers always use.
PUBLIC_THRESHOLD = 11


@dataclass(frozen=True)
class Equation:
    """`total` = sum of `parts`."""

    total: str
    parts: tuple[str, ...]

    @property
    def cells(self) -> tuple[str, ...]:
        return (self.total, *self.parts)


@dataclass
class Table:
    """Counts by cell name, the equations that tie them, and which are exempt or never published."""

    values: dict[str, int] = field(default_factory=dict)
    equations: list[Equation] = field(default_factory=list)
    exempt: set[str] = field(default_factory=set)
    virtual: set[str] = field(default_factory=set)

    def cell(self, name: str, value: int, *, exempt: bool = False, virtual: bool = False) -> str:
        self.values[name] = value
        if exempt:
            self.exempt.add(name)
        if virtual:
            self.virtual.add(name)
        return name

    def equation(self, total: str, parts: Iterable[str]) -> None:
        self.equations.append(Equation(total, tuple(parts)))


def is_small(value: int, threshold: int) -> bool:
    """A count the threshold forbids: from 1 to threshold - 1 (0 may always be shown)."""
    return 0 < value < threshold


def suppress(table: Table, threshold: int) -> frozenset[str]:
    """The cells to hide (virtual ones included); none with a threshold of 0 or 1 (off)."""
    if threshold <= 1:
        return frozenset()
    # Virtual cells are unknowns to the reader like hidden ones; only a small one must stay unknown.
    hidden = set(table.virtual) | {
        name
        for name, value in table.values.items()
        if name not in table.exempt and is_small(value, threshold)
    }
    while True:
        if _complement_equations(table, hidden, threshold):
            continue
        fixed = {
            name
            for name in determined(table, hidden) | pinned(table, hidden)
            if _protected(table, name, threshold)
        }
        extra = _complement_of(table, hidden, sorted(fixed))
        if extra is None:
            # What is still fixed, the exempt totals alone fix (a trial's only site holds all its
            # applicants): hiding it would protect nothing, so it is shown like them.
            return frozenset(hidden - fixed)
        hidden.add(extra)


def _complement_equations(table: Table, hidden: set[str], threshold: int) -> bool:
    """Hide a complement in every equation that gives a hidden cell (or a small sum) away; any hidden."""
    changed = False
    for equation in table.equations:
        extra = _needed_complement(table, equation, hidden, threshold)
        if extra is not None:
            hidden.add(extra)
            changed = True
    return changed


def _needed_complement(table: Table, equation: Equation, hidden: set[str], threshold: int) -> str | None:
    members = [name for name in equation.cells if name in hidden]
    if not members or (len(members) == 1 and not _protected(table, members[0], threshold)):
        return None
    hidden_sum = sum(table.values[p] for p in equation.parts if p in hidden)
    total = table.values[equation.total]
    # Hidden parts that add up to a published total give away no more than the total itself.
    small_sum = equation.total not in hidden and is_small(hidden_sum, threshold) and hidden_sum != total
    if len(members) > 1 and not small_sum:
        return None
    candidates = _candidates(table, equation, hidden)
    if small_sum:  # a zero added to the hidden would not make their sum any less small
        candidates = [name for name in candidates if table.values[name] > 0] or candidates[-1:]
    return candidates[0] if candidates else None


def _protected(table: Table, name: str, threshold: int) -> bool:
    """Whether a hidden cell must not be worked out: a small one (any other could have been shown)."""
    return is_small(table.values[name], threshold)


def _candidates(table: Table, equation: Equation, hidden: set[str]) -> list[str]:
    """Published, non-exempt cells of the equation, cheapest to hide first: its parts from the smallest
    (the least information lost), then its total."""
    parts = sorted(
        (p for p in equation.parts if p not in hidden and p not in table.exempt and p not in table.virtual),
        key=lambda p: (table.values[p], p),
    )
    total = [] if equation.total in hidden | table.exempt | table.virtual else [equation.total]
    return parts + total


def _complement_of(table: Table, hidden: set[str], fixed: Sequence[str]) -> str | None:
    """A cell to hide so that the first determined cell that can be protected no longer is: the cheapest
    published cell of an equation that reaches it through hidden cells."""
    for name in fixed:
        seen, queue = {name}, [name]
        while queue:
            current = queue.pop(0)
            for equation in table.equations:
                if current not in equation.cells:
                    continue
                candidates = _candidates(table, equation, hidden)
                if candidates:
                    return candidates[0]
                linked = [c for c in equation.cells if c in hidden and c not in seen]
                seen.update(linked)
                queue.extend(linked)
    return None


def determined(table: Table, hidden: Iterable[str]) -> set[str]:
    """The hidden cells that the published cells and the equations fix to one value.

    Each equation, its published cells moved to the right-hand side, is a row over the hidden cells; a
    hidden cell is determined exactly when its unit vector lies in the span of those rows, that is when
    a row of the reduced row echelon form has it as its only non-zero entry."""
    columns = sorted(set(hidden))
    index = {name: i for i, name in enumerate(columns)}
    rows: list[list[Fraction]] = []
    for equation in table.equations:
        row = [Fraction(0)] * len(columns)
        for name, sign in ((equation.total, 1), *((p, -1) for p in equation.parts)):
            if name in index:
                row[index[name]] += sign
        if any(row):
            rows.append(row)
    return {columns[i] for i in _unit_rows(_reduced(rows, len(columns)))}


def pinned(table: Table, hidden: Iterable[str], rounds: int = 50) -> set[str]:
    """The hidden cells that counts never being negative fixes to one value (a site's enrolled when its
    applied is a published 0), by propagating each cell's bounds through the equations."""
    unknown = set(hidden)
    low: dict[str, float] = {n: 0 if n in unknown else v for n, v in table.values.items()}
    high: dict[str, float] = {n: math.inf if n in unknown else v for n, v in table.values.items()}
    for _ in range(rounds):
        moved = False
        for equation in table.equations:
            bounds = [
                (equation.total, sum(low[p] for p in equation.parts), sum(high[p] for p in equation.parts))
            ]
            for part in equation.parts:
                others_low = sum(low[q] for q in equation.parts if q != part)
                others_high = sum(high[q] for q in equation.parts if q != part)
                bounds.append((part, low[equation.total] - others_high, high[equation.total] - others_low))
            for name, at_least, at_most in bounds:
                if at_least > low[name] or at_most < high[name]:
                    low[name], high[name] = max(low[name], at_least), min(high[name], at_most)
                    moved = True
        if not moved:
            break
    return {name for name in unknown if low[name] == high[name]}


def _reduced(rows: list[list[Fraction]], width: int) -> list[list[Fraction]]:
    """Gauss-Jordan elimination: the reduced row echelon form of `rows`, zero rows dropped."""
    pivot_row = 0
    for column in range(width):
        found = next((r for r in range(pivot_row, len(rows)) if rows[r][column] != 0), None)
        if found is None:
            continue
        rows[pivot_row], rows[found] = rows[found], rows[pivot_row]
        pivot = rows[pivot_row][column]
        rows[pivot_row] = [value / pivot for value in rows[pivot_row]]
        for r in range(len(rows)):
            if r != pivot_row and rows[r][column] != 0:
                factor = rows[r][column]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[pivot_row], strict=True)]
        pivot_row += 1
    return rows[:pivot_row]


def _unit_rows(rows: Sequence[Sequence[Fraction]]) -> list[int]:
    """The columns that some row holds alone."""
    found = []
    for row in rows:
        non_zero = [i for i, value in enumerate(row) if value != 0]
        if len(non_zero) == 1:
            found.append(non_zero[0])
    return found


def shown(values: Mapping[str, int], hidden: frozenset[str]) -> dict[str, int | None]:
    """The values as published: None for every hidden cell."""
    return {name: None if name in hidden else value for name, value in values.items()}
