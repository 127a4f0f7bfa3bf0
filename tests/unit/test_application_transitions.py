"""The application's state machine, without a database: every (status, action) pair, allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from models import ApplicationStatus
from services.applications.transitions import (
    EVENTS,
    TRANSITIONS,
    Action,
    InvalidTransition,
    allowed_from,
    allows,
    next_status,
    require,
)
from services.problems import problem_for

SUBMITTED, ELIGIBLE, INELIGIBLE, NEEDS_REVIEW, ENROLLED, WITHDRAWN = (
    "submitted", "eligible", "ineligible", "needs_review", "enrolled", "withdrawn",
)  # fmt: skip
DECISIONS = {ELIGIBLE, INELIGIBLE, NEEDS_REVIEW}

# The life of an application as the contract and the paths describe it, written out independently of
# the module's table: (status, action) -> the statuses it may reach. None: not stored yet.
EXPECTED: dict[tuple[str | None, str], set[str]] = {
    (None, "submit"): {SUBMITTED},
    (SUBMITTED, "screen"): DECISIONS,
    (SUBMITTED, "dead_letter"): {NEEDS_REVIEW},
    (NEEDS_REVIEW, "review"): {ELIGIBLE, INELIGIBLE},
    (ELIGIBLE, "enroll"): {ENROLLED},
    (SUBMITTED, "withdraw"): {WITHDRAWN},
    (ELIGIBLE, "withdraw"): {WITHDRAWN},
    (NEEDS_REVIEW, "withdraw"): {WITHDRAWN},
    (ENROLLED, "withdraw"): {WITHDRAWN},  # contract v1.1
    (SUBMITTED, "correct"): {SUBMITTED},
    (ELIGIBLE, "correct"): {SUBMITTED},
    (INELIGIBLE, "correct"): {SUBMITTED},
    (NEEDS_REVIEW, "correct"): {SUBMITTED},
    (ELIGIBLE, "rescreen"): DECISIONS,
    (NEEDS_REVIEW, "rescreen"): DECISIONS,
    (NEEDS_REVIEW, "retry"): {SUBMITTED},
}
STATUSES: list[str | None] = [None, SUBMITTED, ELIGIBLE, INELIGIBLE, NEEDS_REVIEW, ENROLLED, WITHDRAWN]
ACTIONS = [
    "submit", "screen", "dead_letter", "review", "enroll", "withdraw", "correct", "rescreen", "retry",
]  # fmt: skip
PAIRS = list(itertools.product(STATUSES, ACTIONS))
ALLOWED = [(s, a) for s, a in PAIRS if (s, a) in EXPECTED]
REFUSED = [(s, a) for s, a in PAIRS if (s, a) not in EXPECTED]


def test_the_pairs_cover_every_status_and_action_of_the_code() -> None:
    assert {s.value for s in ApplicationStatus} | {None} == set(STATUSES)
    assert {a.value for a in Action} == set(ACTIONS)
    assert len(ALLOWED) + len(REFUSED) == len(STATUSES) * len(ACTIONS) == 63
    assert {(None if s is None else s.value, a.value): {t.value for t in targets}
            for (s, a), targets in TRANSITIONS.items()} == EXPECTED  # fmt: skip


@pytest.mark.parametrize(("status", "action"), ALLOWED)
def test_an_allowed_pair_reaches_exactly_its_statuses(status: str | None, action: str) -> None:
    assert allows(status, Action(action))
    require(status, Action(action))
    expected = EXPECTED[(status, action)]
    if len(expected) == 1:
        assert next_status(status, Action(action)) == next(iter(expected))
    for decision in sorted(DECISIONS | {SUBMITTED, ENROLLED, WITHDRAWN}):
        if decision in expected:
            assert next_status(status, Action(action), decision) == decision
        else:  # a decision the action cannot reach is the caller's bug, not the application's state
            with pytest.raises(ValueError, match="reaches"):
                next_status(status, Action(action), decision)


@pytest.mark.parametrize(("status", "action"), REFUSED)
def test_a_refused_pair_raises_invalid_transition_as_a_409(status: str | None, action: str) -> None:
    assert not allows(status, Action(action))
    for attempt in (
        lambda: require(status, Action(action)),
        lambda: next_status(status, Action(action)),
        lambda: next_status(status, Action(action), ELIGIBLE),
    ):
        with pytest.raises(InvalidTransition) as raised:
            attempt()
        refusal = raised.value
        assert (refusal.status_now, refusal.action) == (status, action)
        problem = problem_for(refusal)
        assert (problem.status, problem.kind) == (409, "invalid-state-transition")
        assert problem.body()["type"] == "/problems/invalid-state-transition"


def test_the_refusals_keep_the_words_each_route_has_always_answered() -> None:
    enroll = InvalidTransition(INELIGIBLE, Action.ENROLL)
    assert enroll.detail == "cannot enroll an application that is ineligible; enroll is allowed from eligible"
    assert enroll.context == {"status_now": INELIGIBLE}
    assert problem_for(enroll).body()["status_now"] == INELIGIBLE
    review = InvalidTransition(ELIGIBLE, Action.REVIEW)
    assert (
        review.detail == "cannot review an application that is eligible; review is allowed from needs_review"
    )
    correct = InvalidTransition(WITHDRAWN, Action.CORRECT)
    assert correct.detail == (
        "the application is withdrawn; observations can be corrected while it is submitted, eligible, "
        "ineligible or needs_review"
    )
    assert correct.context == {}  # PATCH never answered `status_now`
    assert "status_now" not in problem_for(correct).body()
    withdraw = InvalidTransition(WITHDRAWN, Action.WITHDRAW)
    assert withdraw.detail.endswith("withdraw is allowed from submitted, eligible, needs_review or enrolled")


def test_allowed_from_lists_the_starting_statuses_in_the_vocabulary_order() -> None:
    assert allowed_from(Action.WITHDRAW) == (SUBMITTED, ELIGIBLE, NEEDS_REVIEW, ENROLLED)
    assert allowed_from(Action.CORRECT) == (SUBMITTED, ELIGIBLE, INELIGIBLE, NEEDS_REVIEW)
    assert allowed_from(Action.RESCREEN) == (ELIGIBLE, NEEDS_REVIEW)
    assert allowed_from(Action.SCREEN) == allowed_from(Action.DEAD_LETTER) == (SUBMITTED,)
    assert allowed_from(Action.SUBMIT) == ()  # only from "not stored yet"


def test_every_action_announces_itself_with_an_application_event() -> None:
    assert {action: payload.event_type for action, payload in EVENTS.items()} == {
        Action.SUBMIT: "application.submitted",
        Action.SCREEN: "application.screened",
        Action.DEAD_LETTER: "application.screened",
        Action.RESCREEN: "application.screened",
        Action.REVIEW: "application.reviewed",
        Action.ENROLL: "application.enrolled",
        Action.WITHDRAW: "application.withdrawn",
        Action.CORRECT: "application.updated",
        Action.RETRY: "application.updated",
    }


def test_closed_applications_stay_closed_but_an_enrolled_one_can_still_withdraw() -> None:
    assert [a for a in Action if allows(WITHDRAWN, a)] == []
    assert [a for a in Action if allows(ENROLLED, a)] == [Action.WITHDRAW]
