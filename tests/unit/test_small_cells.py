"""Scenario 39, the suppression itself (services.reporting.suppression), property-based.

The criterion, checked against a brute-force enumeration of every table the published figures allow
(not against the module's own linear algebra): for random tables and thresholds,
- every published number below the trial level is 0 or at least the threshold;
- no hidden cell is fixed to a value from 1 to threshold - 1 by what is published (totals, other
  cells, the sites' applied minus enrolled, non-negativity): it keeps two feasible values or more, or
  the one it is fixed to is 0 or not small (which could have been shown anyway);
- the hidden parts of a published total add up to 0, at least the threshold, or that total;
- in a weekly series, a cumulative figure the published ones fix never moves by 1..threshold - 1 from
  one week to the next (the difference of consecutive weeks gives no small count away).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from services.reporting.suppression import Table, is_small, suppress

thresholds = st.integers(min_value=2, max_value=15)
small_or_not = st.one_of(st.integers(0, 12), st.integers(11, 40))


def _compositions(total: int, parts: int) -> Iterator[tuple[int, ...]]:  # for the site tables
    """Every way `parts` non-negative counts add up to `total`."""
    if parts == 0:
        if total == 0:
            yield ()
        return
    for first in range(total + 1):
        for rest in _compositions(total - first, parts - 1):
            yield (first, *rest)


def _series(values: list[int]) -> Table:
    table = Table()
    table.cell("total", sum(values), exempt=True)
    table.equation("total", [table.cell(f"w{i:02}", v) for i, v in enumerate(values)])
    return table


@settings(max_examples=150, deadline=None)
@given(st.lists(small_or_not, min_size=1, max_size=7), thresholds)
def test_s39_a_weekly_series_publishes_no_small_count_nor_one_derivable(
    values: list[int], threshold: int
) -> None:
    table = _series(values)
    hidden = suppress(table, threshold)
    if len(values) == 1:
        assert not hidden  # one week holds the whole total, which is the trial's: shown
        return
    names = [f"w{i:02}" for i in range(len(values))]
    published = {n: table.values[n] for n in names if n not in hidden}
    assert all(not is_small(v, threshold) for v in published.values())
    hidden_names = [n for n in names if n in hidden]
    remainder = sum(values) - sum(published.values())
    assert not is_small(remainder, threshold) or remainder == sum(values) or not hidden_names
    # One equation over non-negative counts: hidden cells adding up to `remainder` can each take any
    # value from 0 to it when there are two or more of them, so each keeps at least two values when
    # the remainder is positive; a prefix of the weeks is fixed exactly when it holds none or all of them.
    assert len(hidden_names) != 1
    if hidden_names:
        assert remainder > 0
    cumulative: list[int | None] = [0]
    for k in range(1, len(names) + 1):
        inside = [n for n in hidden_names if n in names[:k]]
        fixed = not inside or len(inside) == len(hidden_names)
        cumulative.append(sum(values[:k]) if fixed else None)
    for before, after in itertools.pairwise(cumulative):
        if before is not None and after is not None:
            assert not is_small(after - before, threshold)


def _sites(applied: list[int], enrolled_share: list[int]) -> tuple[Table, list[tuple[int, int]]]:
    sites = [(a, min(a, e)) for a, e in zip(applied, enrolled_share, strict=False)]
    table = Table()
    table.cell("applied", sum(a for a, _ in sites), exempt=True)
    table.cell("enrolled", sum(e for _, e in sites), exempt=True)
    for i, (a, e) in enumerate(sites):
        table.cell(f"a{i}", a)
        table.cell(f"e{i}", e)
        table.cell(f"r{i}", a - e, virtual=True)
        table.equation(f"a{i}", [f"e{i}", f"r{i}"])
    table.equation("applied", [f"a{i}" for i in range(len(sites))])
    table.equation("enrolled", [f"e{i}" for i in range(len(sites))])
    return table, sites


def _feasible_sites(table: Table, hidden: frozenset[str], count: int) -> list[dict[str, int]]:
    """Every per-site (applied, enrolled) table that agrees with what is published."""
    options = []
    known = {n: v for n, v in table.values.items() if n not in hidden}
    applied_hidden = [i for i in range(count) if f"a{i}" in hidden]
    enrolled_hidden = [i for i in range(count) if f"e{i}" in hidden]
    applied_left = table.values["applied"] - sum(known.get(f"a{i}", 0) for i in range(count))
    enrolled_left = table.values["enrolled"] - sum(known.get(f"e{i}", 0) for i in range(count))
    for a_option in _compositions(applied_left, len(applied_hidden)):
        for e_option in _compositions(enrolled_left, len(enrolled_hidden)):
            cells = dict(known)
            cells.update({f"a{i}": v for i, v in zip(applied_hidden, a_option, strict=True)})
            cells.update({f"e{i}": v for i, v in zip(enrolled_hidden, e_option, strict=True)})
            if all(cells[f"e{i}"] <= cells[f"a{i}"] for i in range(count)):
                options.append(cells)
    return options


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 16), min_size=2, max_size=3),
    st.lists(st.integers(0, 16), min_size=3, max_size=3),
    thresholds,
)
def test_s39_sites_hide_small_counts_and_what_would_give_them_away(
    applied: list[int], enrolled: list[int], threshold: int
) -> None:
    table, sites = _sites(applied, enrolled)
    hidden = suppress(table, threshold)
    for i, (a, e) in enumerate(sites):
        shown = [v for n, v in ((f"a{i}", a), (f"e{i}", e)) if n not in hidden]
        assert all(not is_small(v, threshold) for v in shown), (sites, threshold, hidden)
        if f"a{i}" not in hidden and f"e{i}" not in hidden:
            assert not is_small(a - e, threshold)  # the site's applied-but-not-enrolled
    feasible = _feasible_sites(table, hidden, len(sites))
    for name in hidden - table.virtual:
        values = {option[name] for option in feasible}
        assert len(values) >= 2 or not is_small(values.pop(), threshold), (sites, threshold, hidden, name)


@given(st.lists(small_or_not, min_size=1, max_size=6))
def test_s39_threshold_0_or_1_hides_nothing(values: list[int]) -> None:
    assert suppress(_series(values), 0) == frozenset() == suppress(_series(values), 1)


def test_s39_zero_is_shown_and_a_lone_small_cell_gets_a_complement() -> None:
    table = _series([0, 3, 40, 25])
    hidden = suppress(table, 11)
    assert "w00" not in hidden and "w01" in hidden and len(hidden) == 2  # 3 and the smallest that helps
    assert "w03" in hidden  # 25: 3 + 25 is no small count; a 0 beside the 3 would leave it at 3
