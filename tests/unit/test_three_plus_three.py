"""The 3+3 table (services.trials.three_plus_three): every cell and its edges, by hand."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.trials.three_plus_three import (
    Escalation,
    Participant,
    Recommendation,
    confirm,
    level_state,
    recommend,
    refusal_to_enrol,
)

TODAY = date(2026, 12, 7)
CLOSED = TODAY - timedelta(days=60)  # dosed long enough ago for the 28-day window to have closed
OPEN = TODAY - timedelta(days=3)
DESIGN = Escalation(levels=(1, 2, 3), dlt_window_days=28)


def cohort(dlts: int, size: int = 3, *, pending: int = 0) -> list[Participant]:
    """`size` evaluable participants with windows closed, `dlts` of them with a DLT, then `pending`."""
    done = [Participant(CLOSED, dlt=n < dlts) for n in range(size)]
    return done + [Participant(OPEN) for _ in range(pending)]


def action(design: Escalation, **levels: list[Participant]) -> tuple[str, int | None]:
    found = recommend(design, {int(k[1:]): v for k, v in levels.items()}, TODAY)
    return found.action, found.level


@pytest.mark.parametrize(
    ("dlts", "expected"),
    [(0, ("escalate", 2)), (1, ("expand", 1)), (2, ("stop", None)), (3, ("stop", None))],
)
def test_a_cohort_of_three_at_the_lowest_level(dlts: int, expected: tuple[str, int | None]) -> None:
    assert action(DESIGN, l1=cohort(dlts)) == expected


@pytest.mark.parametrize(
    ("dlts", "expected"), [(0, ("escalate", 2)), (1, ("escalate", 2)), (2, ("stop", None))]
)
def test_an_expanded_cohort_of_six(dlts: int, expected: tuple[str, int | None]) -> None:
    expanded = Escalation(levels=(1, 2, 3), expanded=frozenset({1}))
    assert action(expanded, l1=cohort(dlts, 6)) == expected


def test_two_dlts_above_a_level_with_six_treated_name_it_the_mtd() -> None:
    at_two = Escalation(levels=(1, 2, 3), open_level=2, expanded=frozenset({1}))
    assert action(at_two, l1=cohort(1, 6), l2=cohort(2)) == ("stop", 1)


def test_two_dlts_above_a_level_with_three_treated_expand_the_level_below() -> None:
    at_two = Escalation(levels=(1, 2, 3), open_level=2)
    assert action(at_two, l1=cohort(0), l2=cohort(2)) == ("expand", 1)
    de_escalated = confirm(at_two, recommend(at_two, {1: cohort(0), 2: cohort(2)}, TODAY))
    assert (de_escalated.current, de_escalated.too_toxic, de_escalated.expanded) == (1, {2}, {1})
    # Six treated below with at most one DLT: never back to the too-toxic level; the MTD is named.
    assert action(de_escalated, l1=cohort(1, 6), l2=cohort(2)) == ("stop", 1)
    assert level_state(de_escalated, 2) == "too_toxic"


def test_at_the_top_level_no_dlt_in_three_still_expands_to_six_before_naming_the_mtd() -> None:
    top = Escalation(levels=(1, 2, 3), open_level=3)
    assert action(top, l3=cohort(0)) == ("expand", 3)
    expanded = confirm(top, Recommendation("expand", 3, ""))
    assert action(expanded, l3=cohort(1, 6)) == ("stop", 3)
    assert action(expanded, l3=cohort(2, 6)) == ("expand", 2)


def test_two_dlts_before_the_third_participant_is_dosed_stop_without_waiting() -> None:
    early = [Participant(OPEN, dlt=True), Participant(OPEN, dlt=True)]
    assert action(DESIGN, l1=early) == ("stop", None)
    assert refusal_to_enrol(DESIGN, {1: early}, TODAY) == "level 1 has 2 DLTs: awaiting the safety review"


def test_one_dlt_before_the_third_is_dosed_waits_for_the_cohort() -> None:
    early = [Participant(OPEN, dlt=True), Participant(OPEN)]
    assert action(DESIGN, l1=early)[0] == "wait"
    assert refusal_to_enrol(DESIGN, {1: early}, TODAY) is None  # the third place is open


def test_an_unevaluable_participant_is_replaced() -> None:
    three = [*cohort(0, 2), Participant(CLOSED, dlt=None, evaluable=False)]
    assert action(DESIGN, l1=three)[0] == "wait"
    assert refusal_to_enrol(DESIGN, {1: three}, TODAY) is None
    assert action(DESIGN, l1=[*three, Participant(CLOSED, dlt=False)]) == ("escalate", 2)


def test_an_open_window_or_an_unrecorded_outcome_waits() -> None:
    assert action(DESIGN, l1=cohort(0, 2, pending=1))[0] == "wait"
    unrecorded = [*cohort(0, 2), Participant(CLOSED)]
    assert action(DESIGN, l1=unrecorded)[0] == "wait"
    assert "full" in (refusal_to_enrol(DESIGN, {1: unrecorded}, TODAY) or "")


def test_a_confirmed_escalation_opens_the_next_level_and_stop_closes_all() -> None:
    escalated = confirm(DESIGN, Recommendation("escalate", 2, ""))
    assert [level_state(escalated, level) for level in (1, 2, 3)] == ["closed", "open", "pending"]
    stopped = confirm(escalated, Recommendation("stop", 1, ""))
    assert (stopped.stopped, stopped.mtd_level, stopped.too_toxic) == (True, 1, {2})
    assert refusal_to_enrol(stopped, {}, TODAY) == "dose escalation has stopped: no level is open"
    with pytest.raises(ValueError, match="not a decision"):
        confirm(DESIGN, Recommendation("wait", 1, ""))


def test_escalation_never_returns_to_a_level_found_too_toxic() -> None:
    # Level 3 was too toxic; level 2 with 0 in 3 expands rather than escalate to 3.
    design = Escalation(levels=(1, 2, 3), open_level=2, too_toxic=frozenset({3}))
    assert action(design, l2=cohort(0)) == ("expand", 2)
