"""The rule expression compiler (services/eligibility/compiler.py) and the derived age/reference date."""

from __future__ import annotations

import operator
import random
from dataclasses import replace
from datetime import date, timedelta

import pytest

from services.eligibility import (
    CompiledCriteria,
    CriteriaError,
    CriterionResult,
    Evaluation,
    VariableSpec,
    compile_criteria,
    compiler,
    decide,
    model,
)
from services.eligibility.compiler import period_before
from services.eligibility.logic import FALSE, TRUE, Rule, all_of, any_of, negation, review_when, unknown
from services.eligibility.model import REFERENCE_DATE, environment

VARS = {
    "flag": VariableSpec("bool"),
    "other_flag": VariableSpec("bool"),
    "grade": VariableSpec("int"),
    "score": VariableSpec("float"),
    "colour": VariableSpec("enum", ("red", "green", "blue")),
    "seen_on": VariableSpec("date"),
    "label": VariableSpec("str"),
    "birth_date": VariableSpec("date"),
    "age_years": VariableSpec("int"),
    "consent_date": VariableSpec("date"),
}
SUBMITTED = date(2026, 3, 31)


def document(*criteria: dict) -> dict:
    return {"trial_id": "nct00000001", "criteria": list(criteria)}


def criterion(rule: dict | None = None, cid: str = "I1", kind: str = "inclusion", **extra) -> dict:
    spec = {"id": cid, "kind": kind, "text": f"text of {cid}", **extra}
    if rule is not None:
        spec["rule"] = rule
    return spec


def check(rule: dict, observations: dict, submitted: date = SUBMITTED) -> tuple[str, tuple[str, ...]]:
    """The outcome and missing names of an inclusion criterion with `rule` for these observations."""
    result = compile_criteria(document(criterion(rule)), VARS).evaluate(observations, submitted).results[0]
    return result.outcome, result.missing


# ---- comparison operators ----


@pytest.mark.parametrize(
    ("rule", "observations", "outcome"),
    [
        ({"var": "flag", "eq": True}, {"flag": True}, "met"),
        ({"var": "flag", "eq": True}, {"flag": False}, "not_met"),
        ({"var": "flag", "ne": True}, {"flag": False}, "met"),
        ({"var": "flag", "ne": True}, {"flag": True}, "not_met"),
        ({"var": "colour", "eq": "red"}, {"colour": "red"}, "met"),
        ({"var": "colour", "eq": "red"}, {"colour": "blue"}, "not_met"),
        ({"var": "colour", "ne": "red"}, {"colour": "blue"}, "met"),
        ({"var": "grade", "eq": 3}, {"grade": 3}, "met"),
        ({"var": "grade", "ne": 3}, {"grade": 3}, "not_met"),
        ({"var": "grade", "lt": 3}, {"grade": 2}, "met"),
        ({"var": "grade", "lt": 3}, {"grade": 3}, "not_met"),
        ({"var": "grade", "le": 3}, {"grade": 3}, "met"),
        ({"var": "grade", "le": 3}, {"grade": 4}, "not_met"),
        ({"var": "grade", "gt": 3}, {"grade": 4}, "met"),
        ({"var": "grade", "gt": 3}, {"grade": 3}, "not_met"),
        ({"var": "grade", "ge": 3}, {"grade": 3}, "met"),
        ({"var": "grade", "ge": 3}, {"grade": 2}, "not_met"),
        ({"var": "score", "le": 0.6}, {"score": 0.6}, "met"),
        ({"var": "score", "le": 0.6}, {"score": 0.61}, "not_met"),
        ({"var": "score", "ge": 70}, {"score": 69.9}, "not_met"),
        ({"var": "colour", "in": ["red", "green"]}, {"colour": "green"}, "met"),
        ({"var": "colour", "in": ["red", "green"]}, {"colour": "blue"}, "not_met"),
        ({"var": "colour", "not_in": ["red", "green"]}, {"colour": "blue"}, "met"),
        ({"var": "colour", "not_in": ["red", "green"]}, {"colour": "red"}, "not_met"),
        ({"var": "grade", "in": [3, 4, 5]}, {"grade": 5}, "met"),
        ({"var": "grade", "in": [3, 4, 5]}, {"grade": 6}, "not_met"),
        ({"var": "grade", "between": [2, 4]}, {"grade": 1}, "not_met"),
        ({"var": "grade", "between": [2, 4]}, {"grade": 2}, "met"),
        ({"var": "grade", "between": [2, 4]}, {"grade": 3}, "met"),
        ({"var": "grade", "between": [2, 4]}, {"grade": 4}, "met"),
        ({"var": "grade", "between": [2, 4]}, {"grade": 5}, "not_met"),
        ({"var": "score", "between": [0.5, 1.5]}, {"score": 1.51}, "not_met"),
    ],
)
def test_each_comparison_operator_compares_the_observed_value(rule, observations, outcome):
    assert check(rule, observations) == (outcome, ())


@pytest.mark.parametrize(
    "rule",
    [
        {"var": "flag", "eq": True},
        {"var": "flag", "ne": False},
        {"var": "grade", "lt": 3},
        {"var": "grade", "le": 3},
        {"var": "grade", "gt": 3},
        {"var": "grade", "ge": 3},
        {"var": "grade", "between": [1, 3]},
        {"var": "colour", "in": ["red"]},
        {"var": "colour", "not_in": ["red"]},
        {"var": "seen_on", "within": {"days": 3}},
        {"var": "seen_on", "older_than": {"years": 3}},
    ],
)
def test_an_absent_variable_makes_any_comparison_unknown_and_is_listed_as_missing(rule):
    assert check(rule, {"other_flag": True}) == ("unknown", (rule["var"],))


def test_an_explicit_none_counts_as_absent():
    assert check({"var": "grade", "ge": 3}, {"grade": None}) == ("unknown", ("grade",))


# ---- date windows and calendar arithmetic ----


@pytest.mark.parametrize(
    ("reference", "period", "expected"),
    [
        (date(2026, 3, 31), {"months": 1}, date(2026, 2, 28)),
        (date(2024, 3, 31), {"months": 1}, date(2024, 2, 29)),
        (date(2024, 3, 30), {"months": 1}, date(2024, 2, 29)),
        (date(2026, 5, 31), {"months": 1}, date(2026, 4, 30)),
        (date(2026, 1, 31), {"months": 1}, date(2025, 12, 31)),
        (date(2026, 3, 15), {"months": 1}, date(2026, 2, 15)),
        (date(2026, 12, 31), {"months": 10}, date(2026, 2, 28)),
        (date(2026, 1, 15), {"months": 13}, date(2024, 12, 15)),
        (date(2024, 2, 29), {"years": 1}, date(2023, 2, 28)),
        (date(2024, 2, 29), {"years": 4}, date(2020, 2, 29)),
        (date(2026, 10, 1), {"years": 5}, date(2021, 10, 1)),
        (date(2026, 3, 1), {"days": 1}, date(2026, 2, 28)),
        (date(2024, 3, 1), {"days": 1}, date(2024, 2, 29)),
        (date(2026, 10, 1), {"days": 14}, date(2026, 9, 17)),
        (date(2026, 10, 1), {"weeks": 4}, date(2026, 9, 3)),
        (date(2026, 1, 3), {"weeks": 1}, date(2025, 12, 27)),
    ],
)
def test_period_before_counts_back_in_days_weeks_and_calendar_months(reference, period, expected):
    assert period_before(reference, period) == expected


@pytest.mark.parametrize(
    ("period", "seen_on", "within", "older_than"),
    [
        ({"days": 10}, "2026-03-21", "met", "not_met"),
        ({"days": 10}, "2026-03-20", "not_met", "met"),
        ({"weeks": 2}, "2026-03-17", "met", "not_met"),
        ({"weeks": 2}, "2026-03-16", "not_met", "met"),
        ({"months": 1}, "2026-02-28", "met", "not_met"),
        ({"months": 1}, "2026-02-27", "not_met", "met"),
        ({"years": 2}, "2024-03-31", "met", "not_met"),
        ({"years": 2}, "2024-03-30", "not_met", "met"),
        ({"days": 10}, "2026-03-31", "met", "not_met"),
        ({"days": 10}, "2026-04-30", "met", "not_met"),
    ],
)
def test_within_and_older_than_split_at_the_period_boundary(period, seen_on, within, older_than):
    observations = {"seen_on": seen_on}
    assert check({"var": "seen_on", "within": period}, observations) == (within, ())
    assert check({"var": "seen_on", "older_than": period}, observations) == (older_than, ())


def test_a_window_accepts_a_date_object_as_well_as_an_iso_string():
    rule = {"var": "seen_on", "within": {"months": 1}}
    assert check(rule, {"seen_on": date(2026, 2, 28)}) == ("met", ())
    assert check(rule, {"seen_on": date(2026, 2, 27)}) == ("not_met", ())


def test_a_window_at_the_end_of_february_of_a_leap_year_ends_on_the_29th():
    rule = {"var": "seen_on", "within": {"months": 1}}
    assert check(rule, {"seen_on": "2024-02-29"}, date(2024, 3, 31)) == ("met", ())
    assert check(rule, {"seen_on": "2024-02-28"}, date(2024, 3, 31)) == ("not_met", ())


def test_windows_count_from_the_consent_date_when_it_is_given():
    rule = {"var": "seen_on", "within": {"days": 10}}
    observations = {"seen_on": "2026-01-05", "consent_date": "2026-01-10"}
    assert check(rule, observations, date(2026, 3, 31)) == ("met", ())


def test_windows_count_from_the_submission_date_without_a_consent_date():
    rule = {"var": "seen_on", "within": {"days": 10}}
    assert check(rule, {"seen_on": "2026-01-05"}, date(2026, 3, 31)) == ("not_met", ())
    assert check(rule, {"seen_on": "2026-01-05"}, date(2026, 1, 15)) == ("met", ())


# ---- age at the reference date ----


@pytest.mark.parametrize(
    ("birth_date", "consent_date", "age"),
    [
        ("2008-10-01", "2026-10-01", 18),
        ("2008-10-02", "2026-10-01", 17),
        ("2008-09-30", "2026-10-01", 18),
        ("1945-10-01", "2026-10-01", 81),
        ("1945-10-02", "2026-10-01", 80),
        ("2008-02-29", "2026-02-28", 17),
        ("2008-02-29", "2026-03-01", 18),
        ("2008-02-29", "2024-02-29", 16),
        ("2008-12-31", "2026-12-31", 18),
        ("2009-01-01", "2026-12-31", 17),
    ],
)
def test_age_is_completed_years_from_birth_date_at_the_consent_date(birth_date, consent_date, age):
    observations = {"birth_date": birth_date, "consent_date": consent_date}
    assert check({"var": "age", "eq": age}, observations, date(2030, 1, 1)) == ("met", ())


def test_age_is_taken_at_the_submission_date_without_a_consent_date():
    rule = {"var": "age", "ge": 18}
    assert check(rule, {"birth_date": date(2008, 4, 1)}, date(2026, 3, 31)) == ("not_met", ())
    assert check(rule, {"birth_date": date(2008, 3, 31)}, date(2026, 3, 31)) == ("met", ())


@pytest.mark.parametrize(
    ("age_years", "outcome"), [(17, "not_met"), (18, "met"), (80, "met"), (81, "not_met")]
)
def test_age_years_is_used_when_birth_date_is_absent(age_years, outcome):
    assert check({"var": "age", "between": [18, 80]}, {"age_years": age_years}) == (outcome, ())


def test_birth_date_wins_over_age_years():
    observations = {"birth_date": "2010-01-01", "age_years": 40, "consent_date": "2026-03-01"}
    assert check({"var": "age", "ge": 18}, observations) == ("not_met", ())


def test_age_without_birth_date_or_age_years_is_unknown():
    assert check({"var": "age", "ge": 18}, {"consent_date": "2026-03-01"}) == (
        "unknown",
        ("age_years", "birth_date"),
    )


# ---- composition: all / any / not / if-then / review ----

FLAG = {"var": "flag", "eq": True}
OTHER = {"var": "other_flag", "eq": True}
BOOL_CASES = {"true": True, "false": False, "unknown": None}


def observe(**values: bool | None) -> dict:
    return {name: value for name, value in values.items() if value is not None}


@pytest.mark.parametrize(
    ("flag", "other", "all_of", "any_of"),
    [
        ("true", "true", "met", "met"),
        ("true", "false", "not_met", "met"),
        ("true", "unknown", "unknown", "met"),
        ("false", "unknown", "not_met", "unknown"),
        ("false", "false", "not_met", "not_met"),
        ("unknown", "unknown", "unknown", "unknown"),
    ],
)
def test_all_and_any_combine_with_kleene_logic(flag, other, all_of, any_of):
    observations = observe(flag=BOOL_CASES[flag], other_flag=BOOL_CASES[other])
    assert check({"all": [FLAG, OTHER]}, observations)[0] == all_of
    assert check({"any": [FLAG, OTHER]}, observations)[0] == any_of


@pytest.mark.parametrize(("flag", "outcome"), [("true", "not_met"), ("false", "met"), ("unknown", "unknown")])
def test_not_inverts_a_known_result_and_keeps_unknown(flag, outcome):
    assert check({"not": FLAG}, observe(flag=BOOL_CASES[flag]))[0] == outcome


@pytest.mark.parametrize(
    ("condition", "consequence", "outcome", "missing"),
    [
        ("true", "true", "met", ()),
        ("true", "false", "not_met", ()),
        ("true", "unknown", "unknown", ("other_flag",)),
        ("false", "true", "met", ()),
        ("false", "false", "met", ()),
        ("false", "unknown", "met", ()),
        ("unknown", "true", "met", ()),
        ("unknown", "false", "unknown", ("flag",)),
        ("unknown", "unknown", "unknown", ("flag", "other_flag")),
    ],
)
def test_if_then_is_material_implication(condition, consequence, outcome, missing):
    observations = observe(flag=BOOL_CASES[condition], other_flag=BOOL_CASES[consequence])
    assert check({"if": FLAG, "then": OTHER}, observations) == (outcome, missing)


def test_review_is_unknown_with_the_note_when_its_condition_holds():
    doc = document(criterion({"review": FLAG, "note": "  Ask the investigator.  "}))
    result = compile_criteria(doc, VARS).evaluate({"flag": True}, SUBMITTED).results[0]
    assert (result.outcome, result.missing, result.note) == ("unknown", (), "Ask the investigator.")


@pytest.mark.parametrize(
    ("flag", "outcome", "missing"), [(False, "not_met", ()), (None, "unknown", ("flag",))]
)
def test_review_without_its_condition_holding_carries_no_note(flag, outcome, missing):
    doc = document(criterion({"review": FLAG, "note": "Ask."}))
    result = compile_criteria(doc, VARS).evaluate(observe(flag=flag), SUBMITTED).results[0]
    assert (result.outcome, result.missing, result.note) == (outcome, missing, None)


def test_a_judgment_criterion_has_outcome_judgment():
    doc = document(criterion(judgment=True))
    assert compile_criteria(doc, VARS).evaluate({}, SUBMITTED).results[0].outcome == "judgment"


def test_compiled_criteria_record_the_trial_id_upper_case_and_every_variable_read():
    doc = document(criterion({"all": [FLAG, {"var": "age", "ge": 18}]}), criterion(OTHER, "E1", "exclusion"))
    compiled = compile_criteria(doc, VARS)
    assert compiled.trial_id == "NCT00000001"
    assert compiled.variables == frozenset({"flag", "age", "other_flag"})
    assert [c.id for c in compiled.criteria] == ["I1", "E1"]


# ---- errors ----


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"var": "weight", "gt": 3}, "unknown variable"),
        ({"var": "grade", "approx": 3}, "unknown operator"),
        ({"var": "grade"}, "exactly one operator"),
        ({"var": "grade", "gt": 3, "lt": 5}, "exactly one operator"),
        ({"var": "flag", "eq": "yes"}, "true or false"),
        ({"var": "flag", "eq": 1}, "true or false"),
        ({"var": "colour", "eq": "purple"}, "takes one of"),
        ({"var": "colour", "in": ["red", "purple"]}, "takes one of"),
        ({"var": "grade", "eq": "3"}, "compares with numbers"),
        ({"var": "grade", "ge": True}, "compares with numbers"),
        ({"var": "score", "between": [0, "1"]}, "compares with numbers"),
        ({"var": "colour", "gt": "red"}, "cannot be ordered"),
        ({"var": "flag", "lt": 1}, "cannot be ordered"),
        ({"var": "label", "ge": 3}, "cannot be ordered"),
        ({"var": "seen_on", "between": [1, 2]}, "cannot be ordered"),
        ({"var": "seen_on", "eq": "2026-01-01"}, "is a date"),
        ({"var": "grade", "within": {"days": 3}}, "needs a date variable"),
        ({"var": "flag", "older_than": {"days": 3}}, "needs a date variable"),
        ({"var": "seen_on", "within": {"hours": 3}}, "with a whole number"),
        ({"var": "seen_on", "within": {"days": 1.5}}, "with a whole number"),
        ({"var": "seen_on", "within": {"days": 1, "weeks": 1}}, "with a whole number"),
        ({"var": "seen_on", "older_than": 3}, "with a whole number"),
        ({"var": "seen_on", "within": {"days": True}}, "with a whole number"),
        ({"var": "seen_on", "older_than": {"weeks": -2}}, "with a whole number"),
        ({"var": "grade", "between": [1]}, "takes [low, high]"),
        ({"var": "colour", "in": []}, "non-empty list"),
        ({"var": "colour", "not_in": "red"}, "non-empty list"),
        ({"all": []}, "non-empty list"),
        ({"any": FLAG}, "non-empty list"),
        ({"review": FLAG, "note": "  "}, "non-empty `note`"),
        ({"review": FLAG}, "unknown expression"),
        ({"if": FLAG}, "unknown expression"),
        ({"xor": [FLAG, OTHER]}, "unknown expression"),
        ({"all": [FLAG, "flag"]}, "expected an expression mapping"),
        ({"not": {"var": "nope", "eq": True}}, "unknown variable"),
    ],
)
def test_a_faulty_rule_is_refused_naming_the_criterion_and_the_problem(rule, message):
    with pytest.raises(CriteriaError, match="criterion I1: ") as raised:
        compile_criteria(document(criterion(rule)), VARS)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ([criterion(FLAG), criterion(OTHER)], "appears twice"),
        ([criterion(FLAG, "I1", "exclusion")], "has kind exclusion"),
        ([criterion(FLAG, "E1", "inclusion")], "has kind inclusion"),
        ([criterion(FLAG, judgment=True)], "exactly one of"),
        ([criterion()], "exactly one of"),
        ([criterion(FLAG, "X1")], "is not of the form"),
        ([criterion(FLAG, extra_field=1)], "xtra"),
        ([], "at least 1"),
    ],
    ids=[
        "duplicate_id",
        "i_id_exclusion",
        "e_id_inclusion",
        "rule_and_judgment",
        "neither",
        "bad_id",
        "extra",
        "empty",
    ],
)
def test_a_faulty_document_is_refused_with_criteria_error(criteria, message):
    with pytest.raises(CriteriaError, match=message):
        compile_criteria(document(*criteria), VARS)


def test_an_id_with_a_sub_letter_is_accepted():
    compiled = compile_criteria(document(criterion(FLAG, "I2.a")), VARS)
    assert compiled.criteria[0].id == "I2.a"


# ---- compiled closures against the reference semantics (logic.py verdicts over model.environment) ----

REFERENCE_TESTS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "between": lambda value, bounds: bounds[0] <= value <= bounds[1],
    "in": lambda value, members: value in members,
    "not_in": lambda value, members: value not in members,
}


def reference_rule(node: dict) -> Rule:
    """The rule as the documented semantics read it, built from logic.py's verdict combinators."""
    if "var" in node:
        name = node["var"]
        ((op, argument),) = [(key, value) for key, value in node.items() if key != "var"]
        missing = frozenset({"birth_date", "age_years"}) if name == "age" else frozenset({name})

        def comparison(env):
            value = env.get(name)
            if value is None:
                return unknown(missing)
            if op in ("within", "older_than"):
                when = value if isinstance(value, date) else date.fromisoformat(value)
                limit = period_before(env[REFERENCE_DATE], argument)
                return TRUE if (when >= limit if op == "within" else when < limit) else FALSE
            return TRUE if REFERENCE_TESTS[op](value, argument) else FALSE

        return comparison
    if "all" in node:
        return all_of([reference_rule(item) for item in node["all"]])
    if "any" in node:
        return any_of([reference_rule(item) for item in node["any"]])
    if "not" in node:
        return negation(reference_rule(node["not"]))
    if "if" in node:
        return any_of([negation(reference_rule(node["if"])), reference_rule(node["then"])])
    return review_when(reference_rule(node["review"]), node["note"].strip())


def reference_evaluation(doc: dict, observations: dict, submitted: date) -> Evaluation:
    env = environment(observations, submitted)
    results = []
    for spec in doc["criteria"]:
        if "rule" not in spec:
            results.append(CriterionResult(spec["id"], spec["kind"], spec["text"], "judgment"))
            continue
        value, missing, notes = reference_rule(spec["rule"])(env)
        outcome = "unknown" if value is None else "met" if value else "not_met"
        note = " ".join(notes) if notes else None
        results.append(
            CriterionResult(spec["id"], spec["kind"], spec["text"], outcome, tuple(sorted(missing)), note)
        )
    return decide(results)


NOTES = ("Ask the investigator.", "  Check the imaging. ", "Ask the investigator.")


def random_comparison(rng: random.Random) -> dict:
    kind = rng.choice(["flag", "grade", "score", "colour", "seen_on", "age"])
    if kind == "flag":
        return {"var": rng.choice(["flag", "other_flag"]), rng.choice(["eq", "ne"]): rng.random() < 0.5}
    if kind == "colour":
        op = rng.choice(["eq", "ne", "in", "not_in"])
        colours = ["red", "green", "blue"]
        argument = rng.choice(colours) if op in ("eq", "ne") else rng.sample(colours, rng.randint(1, 3))
        return {"var": "colour", op: argument}
    if kind == "seen_on":
        unit = rng.choice(["days", "weeks", "months", "years"])
        return {"var": "seen_on", rng.choice(["within", "older_than"]): {unit: rng.choice([0, 1, 2, 14])}}
    name = {"grade": "grade", "score": "score", "age": "age"}[kind]
    number = (lambda: rng.randint(0, 6)) if name == "grade" else (lambda: rng.choice([0.5, 1.0, 2.5]))
    if name == "age":
        number = lambda: rng.choice([17, 18, 65])  # noqa: E731
    op = rng.choice(["eq", "ne", "lt", "le", "gt", "ge", "between", "in", "not_in"])
    if op == "between":
        return {"var": name, op: sorted([number(), number()])}
    if op in ("in", "not_in"):
        return {"var": name, op: [number() for _ in range(rng.randint(1, 3))]}
    return {"var": name, op: number()}


def random_rule(rng: random.Random, depth: int) -> dict:
    if depth == 0 or rng.random() < 0.3:
        return random_comparison(rng)
    kind = rng.choice(["all", "any", "all", "any", "not", "if", "review"])
    if kind in ("all", "any"):
        return {kind: [random_rule(rng, depth - 1) for _ in range(rng.randint(1, 4))]}
    if kind == "not":
        return {"not": random_rule(rng, depth - 1)}
    if kind == "if":
        return {"if": random_rule(rng, depth - 1), "then": random_rule(rng, depth - 1)}
    return {"review": random_rule(rng, depth - 1), "note": rng.choice(NOTES)}


def random_document(rng: random.Random) -> dict:
    criteria = []
    for n in range(rng.randint(1, 5)):
        cid, kind = (f"I{n + 1}", "inclusion") if rng.random() < 0.6 else (f"E{n + 1}", "exclusion")
        if rng.random() < 0.1:
            criteria.append(criterion(None, cid, kind, judgment=True))
        else:
            criteria.append(criterion(random_rule(rng, rng.randint(0, 4)), cid, kind))
    return document(*criteria)


DATES = [date(2026, 3, 31), date(2024, 2, 29), date(2026, 1, 31), date(2025, 12, 31), date(2026, 3, 1)]


def random_observations(rng: random.Random) -> dict:
    def maybe(value):
        return value if rng.random() < 0.75 else None

    reference = rng.choice(DATES)
    seen = reference - timedelta(days=rng.choice([0, 1, 13, 14, 15, 27, 28, 29, 30, 31, 365, 366, 731]))
    born = date(reference.year - rng.choice([17, 18, 65]), reference.month, 1) + timedelta(
        days=rng.randint(-2, 40)
    )
    observations = {
        "flag": maybe(rng.random() < 0.5),
        "other_flag": maybe(rng.random() < 0.5),
        "grade": maybe(rng.randint(0, 6)),
        "score": maybe(rng.choice([0.4, 0.5, 1.0, 2.5, 2.6])),
        "colour": maybe(rng.choice(["red", "green", "blue"])),
        "seen_on": maybe(seen.isoformat() if rng.random() < 0.8 else seen),
        "consent_date": reference.isoformat() if rng.random() < 0.7 else None,
        "birth_date": maybe(born.isoformat()),
        "age_years": maybe(rng.choice([17, 18, 65])),
    }
    return {name: value for name, value in observations.items() if value is not None or rng.random() < 0.1}


@pytest.mark.parametrize("seed", range(20))
def test_compiled_criteria_agree_with_the_reference_semantics(seed, monkeypatch):
    """Random rules and applicants: the same decision, outcomes, missing names in order and notes; the
    compiled pair behind each criterion's verdict `rule` too. Small caches, so they are refilled often."""
    monkeypatch.setattr(model, "EVALUATIONS_KEPT", 8)
    monkeypatch.setattr(compiler, "LIMITS_KEPT", 2)
    rng = random.Random(seed)
    for _ in range(40):
        doc = random_document(rng)
        compiled = compile_criteria(doc, VARS)
        for _ in range(25):
            observations = random_observations(rng)
            submitted = rng.choice(DATES)
            expected = reference_evaluation(doc, observations, submitted)
            assert compiled.evaluate(observations, submitted) == expected, (doc, observations, submitted)
            assert compiled.evaluate(observations, submitted) == expected  # again, from what was kept
            env = environment(observations, submitted)
            for spec, compiled_criterion in zip(doc["criteria"], compiled.criteria, strict=True):
                if compiled_criterion.rule is not None:
                    assert compiled_criterion.rule(env) == reference_rule(spec["rule"])(env)


def test_the_reference_path_gives_the_same_evaluation_for_criteria_without_closures():
    """CompiledCriteria built from verdict rules alone (no compiled closures) evaluate the reference way."""
    doc = document(
        criterion({"all": [FLAG, {"var": "age", "ge": 18}]}),
        criterion({"review": OTHER, "note": "Ask."}, "E1", "exclusion"),
        criterion(None, "E2", "exclusion", judgment=True),
    )
    compiled = compile_criteria(doc, VARS)
    bare = CompiledCriteria(
        compiled.trial_id,
        tuple(replace(c, answer=None, explain=None) for c in compiled.criteria),
        compiled.variables,
    )
    for observations in ({"flag": True, "age_years": 30, "other_flag": True}, {"flag": True}, {}):
        assert bare.evaluate(observations, SUBMITTED) == compiled.evaluate(observations, SUBMITTED)


def test_criteria_reading_no_date_or_age_skip_the_reference_date():
    compiled = compile_criteria(document(criterion(FLAG), criterion(OTHER, "E1", "exclusion")), VARS)
    assert not compiled.reads_reference
    assert compile_criteria(document(criterion({"var": "age", "ge": 18})), VARS).reads_reference
    assert compile_criteria(
        document(criterion({"var": "seen_on", "within": {"days": 1}})), VARS
    ).reads_reference
    evaluation = compiled.evaluate({"flag": True}, SUBMITTED)
    assert (evaluation.decision, evaluation.deciding) == ("needs_review", ("E1",))
    assert evaluation.results[1].missing == ("other_flag",)


def test_applicants_with_the_same_outcomes_get_equal_evaluations_and_different_ones_differ():
    compiled = compile_criteria(document(criterion({"any": [FLAG, {"var": "grade", "ge": 3}]})), VARS)
    first, second = compiled.evaluate({"flag": True}, SUBMITTED), compiled.evaluate({"grade": 4}, SUBMITTED)
    assert first == second
    assert first.decision == "eligible"
    unknown_grade = compiled.evaluate({"flag": False}, SUBMITTED)
    unknown_both = compiled.evaluate({}, SUBMITTED)
    assert unknown_grade.results[0].missing == ("grade",)
    assert unknown_both.results[0].missing == ("flag", "grade")


# ---- reflex tests: a confirmatory result counts when known, and is not needed when not indicated ----

REFLEX = {"reflex": {"var": "other_flag", "eq": True}, "indicated_by": {"var": "flag", "eq": True}}


@pytest.mark.parametrize(
    ("observations", "outcome", "missing"),
    [
        ({"flag": False}, "not_met", ()),  # routine test negative, reflex not done: negative
        ({"flag": False, "other_flag": True}, "met", ()),  # a reflex result sent anyway counts
        ({"flag": True}, "unknown", ("other_flag",)),  # indicated and not done: ask for it
        ({"flag": True, "other_flag": False}, "not_met", ()),
        ({}, "unknown", ("flag",)),  # the routine test is what is missing
    ],
)
def test_a_reflex_test_is_needed_only_when_its_routine_test_calls_for_it(
    observations: dict, outcome: str, missing: tuple[str, ...]
) -> None:
    assert check(REFLEX, observations) == (outcome, missing)


def test_a_reflex_runs_the_same_on_the_reference_path_as_compiled() -> None:
    compiled = compile_criteria(document(criterion(REFLEX)), VARS)
    [rule_criterion] = compiled.criteria
    assert rule_criterion.rule is not None
    for observations in ({"flag": False}, {"flag": True}, {}, {"flag": True, "other_flag": True}):
        value, missing, _ = rule_criterion.rule(environment(observations, SUBMITTED))
        expected = {"met": True, "not_met": False, "unknown": None}[check(REFLEX, observations)[0]]
        assert value is expected and tuple(sorted(missing)) == check(REFLEX, observations)[1]


def test_a_reflex_needs_both_parts() -> None:
    with pytest.raises(CriteriaError):
        compile_criteria(document(criterion({"reflex": {"var": "flag", "eq": True}})), VARS)
