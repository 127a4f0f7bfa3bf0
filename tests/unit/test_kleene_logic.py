"""Kleene three-valued logic (services/eligibility/logic.py) and the decision rule (model.decide)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from services.eligibility import CriterionResult, decide
from services.eligibility.logic import (
    FALSE,
    TRUE,
    Explain,
    Test,
    Verdict,
    all_of,
    any_of,
    as_rule,
    explain_each,
    explain_missing,
    explain_review,
    kleene_and,
    kleene_implies,
    kleene_not,
    kleene_or,
    kleene_review,
    negation,
    review_answer,
    review_when,
    unknown,
)

UNKNOWN_A: Verdict = unknown(frozenset({"a"}))
UNKNOWN_B: Verdict = unknown(frozenset({"b"}))


def const(verdict: Verdict):
    """A rule that ignores its environment and answers `verdict`."""
    return lambda env: verdict


def value_of(name: str):
    """A rule reading a three-valued variable from the environment; absent means unknown."""

    def rule(env):
        value = env.get(name)
        if value is None:
            return unknown(frozenset({name}))
        return TRUE if value else FALSE

    return rule


T, F, U = TRUE, FALSE, UNKNOWN_A


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (T, T, True),
        (T, F, False),
        (T, U, None),
        (F, T, False),
        (F, F, False),
        (F, U, False),
        (U, T, None),
        (U, F, False),
        (U, U, None),
    ],
    ids=["tt", "tf", "tu", "ft", "ff", "fu", "ut", "uf", "uu"],
)
def test_all_of_follows_the_kleene_and_truth_table(left, right, expected):
    value, _, _ = all_of([const(left), const(right)])({})
    assert value is expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        (T, T, True),
        (T, F, True),
        (T, U, True),
        (F, T, True),
        (F, F, False),
        (F, U, None),
        (U, T, True),
        (U, F, None),
        (U, U, None),
    ],
    ids=["tt", "tf", "tu", "ft", "ff", "fu", "ut", "uf", "uu"],
)
def test_any_of_follows_the_kleene_or_truth_table(left, right, expected):
    value, _, _ = any_of([const(left), const(right)])({})
    assert value is expected


@pytest.mark.parametrize(("operand", "expected"), [(T, False), (F, True), (U, None)], ids=["t", "f", "u"])
def test_negation_follows_the_kleene_not_truth_table(operand, expected):
    value, _, _ = negation(const(operand))({})
    assert value is expected


@pytest.mark.parametrize("order", ["false_first", "unknown_first"])
def test_false_and_unknown_is_plainly_false_with_no_missing_names(order):
    rules = [const(FALSE), const(UNKNOWN_A)]
    if order == "unknown_first":
        rules.reverse()
    assert all_of(rules)({}) == (False, frozenset(), ())


@pytest.mark.parametrize("order", ["true_first", "unknown_first"])
def test_true_or_unknown_is_plainly_true_with_no_missing_names(order):
    rules = [const(TRUE), const(UNKNOWN_A)]
    if order == "unknown_first":
        rules.reverse()
    assert any_of(rules)({}) == (True, frozenset(), ())


@pytest.mark.parametrize("combine", [all_of, any_of], ids=["all_of", "any_of"])
def test_an_unknown_result_carries_the_union_of_missing_names(combine):
    verdict = combine([const(UNKNOWN_A), const(UNKNOWN_B), const(unknown(frozenset({"a", "c"})))])({})
    assert verdict == (None, frozenset({"a", "b", "c"}), ())


def test_all_of_leaves_out_names_of_true_operands_from_missing():
    rule = all_of([value_of("x"), value_of("y"), value_of("z")])
    assert rule({"x": True}) == (None, frozenset({"y", "z"}), ())


def test_any_of_leaves_out_names_of_false_operands_from_missing():
    rule = any_of([value_of("x"), value_of("y"), value_of("z")])
    assert rule({"y": False}) == (None, frozenset({"x", "z"}), ())


def test_nested_unknowns_carry_every_missing_name_up_the_tree():
    rule = all_of([any_of([value_of("a"), value_of("b")]), negation(value_of("c"))])
    assert rule({}) == (None, frozenset({"a", "b", "c"}), ())


def test_nested_false_branch_drops_the_missing_names_of_its_siblings():
    rule = all_of([any_of([value_of("a"), value_of("b")]), value_of("c")])
    assert rule({"c": False}) == (False, frozenset(), ())


@pytest.mark.parametrize(("operand", "expected"), [(TRUE, FALSE), (FALSE, TRUE)], ids=["t", "f"])
def test_negation_of_a_known_verdict_is_known_without_names(operand, expected):
    assert negation(const(operand))({}) == expected


def test_negation_of_unknown_keeps_its_missing_names_and_notes():
    verdict = unknown(frozenset({"a", "b"}), ("check it",))
    assert negation(const(verdict))({}) == verdict


def test_all_of_with_only_true_operands_is_true_without_names():
    assert all_of([const(TRUE), const(TRUE), const(TRUE)])({}) == TRUE


def test_any_of_with_only_false_operands_is_false_without_names():
    assert any_of([const(FALSE), const(FALSE), const(FALSE)])({}) == FALSE


def test_review_when_the_condition_holds_is_unknown_with_the_note_and_no_missing():
    assert review_when(const(TRUE), "ask the PI")({}) == (None, frozenset(), ("ask the PI",))


def test_review_when_the_condition_fails_is_plainly_false():
    assert review_when(const(FALSE), "ask the PI")({}) == FALSE


def test_review_when_the_condition_is_unknown_reports_its_missing_names_not_the_note():
    assert review_when(const(UNKNOWN_A), "ask the PI")({}) == (None, frozenset({"a"}), ())


@pytest.mark.parametrize("combine", [all_of, any_of], ids=["all_of", "any_of"])
def test_review_notes_propagate_through_and_and_or(combine):
    rule = combine([review_when(const(TRUE), "first"), const(UNKNOWN_B)])
    assert rule({}) == (None, frozenset({"b"}), ("first",))


def test_notes_are_kept_in_order_and_not_repeated():
    rule = any_of(
        [
            review_when(const(TRUE), "first"),
            review_when(const(TRUE), "second"),
            review_when(const(TRUE), "first"),
        ]
    )
    assert rule({}) == (None, frozenset(), ("first", "second"))


def test_a_review_is_overridden_by_a_true_sibling_in_or():
    assert any_of([review_when(const(TRUE), "note"), const(TRUE)])({}) == TRUE


def test_a_review_is_overridden_by_a_false_sibling_in_and():
    assert all_of([review_when(const(TRUE), "note"), const(FALSE)])({}) == FALSE


def test_rules_read_their_environment_on_every_call():
    rule = all_of([value_of("x")])
    assert [rule({"x": True})[0], rule({"x": False})[0], rule({})[0]] == [True, False, None]


# ---- decide(): the decision rule of API.md "Enumerations" ----


def result(cid: str, outcome: str) -> CriterionResult:
    kind = "inclusion" if cid.startswith("I") else "exclusion"
    missing = ("x",) if outcome == "unknown" else ()
    return CriterionResult(cid, kind, f"text of {cid}", outcome, missing)


@pytest.mark.parametrize(
    ("outcomes", "decision", "deciding"),
    [
        ({"I1": "met", "E1": "not_met"}, "eligible", ()),
        ({"I1": "not_met", "E1": "not_met"}, "ineligible", ("I1",)),
        ({"I1": "met", "E1": "met"}, "ineligible", ("E1",)),
        ({"I1": "unknown", "E1": "not_met"}, "needs_review", ("I1",)),
        ({"I1": "met", "E1": "unknown"}, "needs_review", ("E1",)),
        ({"I1": "met", "E1": "judgment"}, "eligible", ()),
        ({"I1": "judgment", "E1": "judgment"}, "eligible", ()),
        ({"I1": "unknown", "E1": "met"}, "ineligible", ("E1",)),
        ({"I1": "not_met", "E1": "unknown"}, "ineligible", ("I1",)),
        ({"I1": "not_met", "I2": "met", "E1": "met", "E2": "not_met"}, "ineligible", ("I1", "E1")),
        ({"I1": "unknown", "I2": "met", "E1": "not_met", "E2": "unknown"}, "needs_review", ("I1", "E2")),
        ({"I1": "unknown", "E1": "judgment"}, "needs_review", ("I1",)),
    ],
    ids=[
        "all_pass",
        "inclusion_not_met",
        "exclusion_met",
        "inclusion_unknown",
        "exclusion_unknown",
        "judgment_does_not_block",
        "only_judgment",
        "ineligible_beats_needs_review_exclusion",
        "ineligible_beats_needs_review_inclusion",
        "every_excluding_id_listed",
        "every_unknown_id_listed",
        "judgment_is_not_a_reason_for_review",
    ],
)
def test_decide_applies_the_contract_decision_rule(outcomes, decision, deciding):
    results = [result(cid, outcome) for cid, outcome in outcomes.items()]
    evaluation = decide(results)
    assert (evaluation.decision, evaluation.deciding) == (decision, deciding)
    assert evaluation.results == tuple(results)


def test_an_inclusion_met_and_an_exclusion_not_met_never_decide():
    evaluation = decide([result("I1", "met"), result("E1", "not_met"), result("E2", "judgment")])
    assert "E2" not in evaluation.deciding
    assert evaluation.deciding == ()


# ---- the compiled forms (kleene_*, explain_*): same values and reasons as the verdict combinators ----

NOTED_FIRST: Verdict = unknown(frozenset({"a"}), ("first",))
NOTED_BOTH: Verdict = unknown(frozenset({"c", "b"}), ("second", "first"))
POOL = {"t": TRUE, "f": FALSE, "ua": UNKNOWN_A, "ub": UNKNOWN_B, "n1": NOTED_FIRST, "n2": NOTED_BOTH}
COMBINATIONS = [(a,) for a in POOL] + [(a, b) for a in POOL for b in POOL]
COMBINATIONS += [(a, b, c) for a in POOL for b in POOL for c in POOL]


def compiled_const(verdict: Verdict) -> tuple[Test, Explain]:
    """A compiled (test, explain) pair answering `verdict` whatever the applicant."""
    value, missing, notes = verdict
    why = (tuple(sorted(missing)), notes)
    return (lambda get, reference, age: value), (lambda get, reference, age: why)


def check_compiled(test: Test, explain: Explain, expected: Verdict) -> None:
    """`test` answers exactly the verdict's value; where unknown, `explain` its names (sorted) and notes."""
    value = test({}.get, None, None)
    assert value is expected[0]
    if value is None:
        assert explain({}.get, None, None) == (tuple(sorted(expected[1])), expected[2])


@pytest.mark.parametrize("names", COMBINATIONS, ids="-".join)
def test_kleene_and_and_or_agree_with_all_of_and_any_of(names):
    verdicts = [POOL[n] for n in names]
    pairs = [compiled_const(v) for v in verdicts]
    tests = [test for test, _ in pairs]
    check_compiled(kleene_and(tests), explain_each(pairs), all_of([const(v) for v in verdicts])({}))
    check_compiled(kleene_or(tests), explain_each(pairs), any_of([const(v) for v in verdicts])({}))


@pytest.mark.parametrize("name", list(POOL))
def test_kleene_not_and_review_agree_with_negation_and_review_when(name):
    test, explain = compiled_const(POOL[name])
    check_compiled(kleene_not(test), explain, negation(const(POOL[name]))({}))
    expected = review_when(const(POOL[name]), "ask the PI")({})
    check_compiled(kleene_review(test), explain_review(test, explain, "ask the PI"), expected)
    # a whole rule that is a review answers its value or its reasons in one call, never None
    answer = review_answer(test, explain, "ask the PI")
    assert as_rule(answer, explain, "_ref", "age")({}) == expected
    assert answer({}.get, None, None) == (
        expected[0] if expected[0] is not None else (tuple(sorted(expected[1])), expected[2])
    )


@pytest.mark.parametrize(("condition", "consequence"), [(a, b) for a in POOL for b in POOL], ids="-".join)
def test_kleene_implies_agrees_with_any_of_not_if_then(condition, consequence):
    pairs = [compiled_const(POOL[condition]), compiled_const(POOL[consequence])]
    expected = any_of([negation(const(POOL[condition])), const(POOL[consequence])])({})
    check_compiled(kleene_implies(pairs[0][0], pairs[1][0]), explain_each(pairs), expected)


def test_compiled_and_stops_at_the_first_false_child_as_all_of_does():
    called: list[str] = []

    def child(name: str, value: bool | None) -> Test:
        def test(get, reference, age):
            called.append(name)
            return value

        return test

    assert kleene_and([child("a", None), child("b", False), child("c", True)])({}.get, None, None) is False
    assert kleene_or([child("d", False), child("e", True), child("f", None)])({}.get, None, None) is True
    assert called == ["a", "b", "d", "e"]


def test_explained_notes_keep_first_occurrence_order_without_repeats():
    pairs = [compiled_const(NOTED_BOTH), compiled_const(NOTED_FIRST), compiled_const(UNKNOWN_B)]
    assert explain_each(pairs)({}.get, None, None) == (("a", "b", "c"), ("second", "first"))


def test_explain_missing_lists_names_sorted():
    assert explain_missing(frozenset({"z", "a", "m"}))({}.get, None, None) == (("a", "m", "z"), ())


@pytest.mark.parametrize("name", list(POOL))
def test_as_rule_gives_the_verdict_of_the_compiled_pair(name):
    test, explain = compiled_const(POOL[name])
    assert as_rule(test, explain, "_ref", "age")({}) == POOL[name]


def test_a_criterion_result_cannot_be_changed_since_evaluations_share_them():
    with pytest.raises(FrozenInstanceError):
        result("I1", "met").outcome = "not_met"  # type: ignore[misc]
