"""The 3+3 dose-escalation table: from the open level's cohort, what the safety review should do next.

Pure: levels, participants and the decisions confirmed so far in; the levels' states and one
recommendation out. The rules (the standard 3+3 design):

- A cohort of `cohort_size` (3) evaluable participants at the open level; an unevaluable one is
  replaced (does not count). A DLT counts as soon as it is recorded; no DLT counts once the
  participant's DLT window has closed and the outcome is recorded.
- 0 DLTs in 3: escalate to the next level; at the top level (or below a level already too toxic,
  never re-escalated to) expand to `max_per_level` (6) instead, to name the MTD on 6.
- 1 DLT in 3: expand the level to 6. At most 1 in 6: escalate (or, at the top, stop: MTD this level).
- 2 or more DLTs (in 3 or in 6, even before the cohort is complete): the level is too toxic. The MTD
  is the level below if 6 were treated there with at most 1 DLT; otherwise expand the level below; at
  the lowest level, stop with no tolerated dose.
- Anything else: wait (places to fill, or DLT windows still open).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta


@dataclass(frozen=True)
class Participant:
    dosed_on: date
    dlt: bool | None = None  # None: not recorded yet
    evaluable: bool = True


@dataclass(frozen=True)
class Escalation:
    """The design and what the safety review has confirmed so far."""

    levels: tuple[int, ...]  # ascending
    cohort_size: int = 3
    max_per_level: int = 6
    dlt_window_days: int = 28
    open_level: int | None = None  # None: the first level
    expanded: frozenset[int] = field(default_factory=frozenset)
    too_toxic: frozenset[int] = field(default_factory=frozenset)
    stopped: bool = False
    mtd_level: int | None = None

    @property
    def current(self) -> int:
        return self.levels[0] if self.open_level is None else self.open_level

    def allowance(self, level: int) -> int:
        """How many evaluable participants the level's cohort takes now."""
        return self.max_per_level if level in self.expanded else self.cohort_size


@dataclass(frozen=True)
class Tally:
    enrolled: int  # counting toward the cohort: evaluable or not yet known
    evaluable: int  # complete: a DLT, or no DLT with the window closed
    dlts: int
    pending: int


@dataclass(frozen=True)
class Recommendation:
    action: str  # escalate | expand | stop | wait
    level: int | None
    reason: str


def tally(participants: Sequence[Participant], window_days: int, today: date) -> Tally:
    counting = [p for p in participants if p.evaluable]
    dlts = sum(1 for p in counting if p.dlt is True)
    complete = sum(
        1
        for p in counting
        if p.dlt is True or (p.dlt is False and p.dosed_on + timedelta(days=window_days) <= today)
    )
    return Tally(len(counting), complete, dlts, len(counting) - complete)


def recommend(
    design: Escalation, participants: Mapping[int, Sequence[Participant]], today: date
) -> Recommendation:
    """What the 3+3 table says for the open level now."""
    if design.stopped:
        return Recommendation("wait", design.mtd_level, "escalation has stopped")
    level = design.current
    counts = tally(participants.get(level, ()), design.dlt_window_days, today)
    if counts.dlts >= 2:
        return _too_toxic(design, participants, level, counts, today)
    needed = design.allowance(level)
    if counts.evaluable < needed:
        places = max(needed - counts.enrolled, 0)
        return Recommendation(
            "wait",
            level,
            f"level {level}: {counts.evaluable} of {needed} evaluable, {counts.pending} with the DLT window "
            f"open or no outcome recorded, {places} place(s) to fill",
        )
    upper = _next(design, level)
    if needed == design.cohort_size and counts.dlts == 1:
        return Recommendation(
            "expand", level, f"1 DLT in {needed} at level {level}: expand to {design.max_per_level}"
        )
    if needed == design.cohort_size and upper is None:
        why = "the top level" if level == design.levels[-1] else f"level {level + 1} was too toxic"
        return Recommendation(
            "expand", level, f"0 DLTs in {needed} at {why}: expand to {design.max_per_level} to name the MTD"
        )
    if upper is None:
        return Recommendation(
            "stop", level, f"{counts.dlts} DLT(s) in {needed} at level {level}: MTD is level {level}"
        )
    return Recommendation(
        "escalate", upper, f"{counts.dlts} DLT(s) in {needed} at level {level}: escalate to {upper}"
    )


def _next(design: Escalation, level: int) -> int | None:
    """The level above, unless there is none or it was too toxic (never re-escalated to)."""
    above = [candidate for candidate in design.levels if candidate > level]
    if not above or above[0] in design.too_toxic:
        return None
    return above[0]


def _too_toxic(
    design: Escalation,
    participants: Mapping[int, Sequence[Participant]],
    level: int,
    counts: Tally,
    today: date,
) -> Recommendation:
    below = [candidate for candidate in design.levels if candidate < level]
    if not below:
        return Recommendation(
            "stop", None, f"{counts.dlts} DLTs at level {level}, the lowest: no tolerated dose"
        )
    lower = below[-1]
    lower_counts = tally(participants.get(lower, ()), design.dlt_window_days, today)
    if lower_counts.evaluable >= design.max_per_level and lower_counts.dlts <= 1:
        return Recommendation(
            "stop", lower, f"{counts.dlts} DLTs at level {level}: MTD is level {lower} (6 treated)"
        )
    return Recommendation(
        "expand",
        lower,
        f"{counts.dlts} DLTs at level {level}: expand level {lower} to {design.max_per_level}",
    )


def confirm(design: Escalation, recommendation: Recommendation) -> Escalation:
    """The design after the safety review confirms `recommendation` (never a wait)."""
    level = design.current
    if recommendation.action == "escalate":
        return replace(design, open_level=recommendation.level)
    too_toxic = design.too_toxic
    if recommendation.level is None or (recommendation.level < level):
        too_toxic = too_toxic | {level}  # de-escalating or stopping below: this level was too toxic
    if recommendation.action == "expand" and recommendation.level is not None:
        return replace(
            design,
            open_level=recommendation.level,
            expanded=design.expanded | {recommendation.level},
            too_toxic=too_toxic,
        )
    if recommendation.action == "stop":
        return replace(design, stopped=True, mtd_level=recommendation.level, too_toxic=too_toxic)
    raise ValueError(f"a {recommendation.action} is not a decision")


def level_state(design: Escalation, level: int) -> str:
    """pending (not reached), open, expanded (open or done with 6), closed (passed), too_toxic."""
    if level in design.too_toxic:
        return "too_toxic"
    current = design.current
    if level > current:
        return "pending"
    if level in design.expanded:
        return "expanded"
    if level == current and not design.stopped:
        return "open"
    return "closed"


def refusal_to_enrol(
    design: Escalation, participants: Mapping[int, Sequence[Participant]], today: date
) -> str | None:
    """Why the open level takes no participant now, or None when it has a place."""
    if design.stopped:
        return "dose escalation has stopped: no level is open"
    level = design.current
    counts = tally(participants.get(level, ()), design.dlt_window_days, today)
    if counts.dlts >= 2:
        return f"level {level} has {counts.dlts} DLTs: awaiting the safety review"
    if counts.enrolled >= design.allowance(level):
        return (
            f"level {level}'s cohort of {design.allowance(level)} is full: awaiting DLT outcomes and the "
            "safety review"
        )
    return None
