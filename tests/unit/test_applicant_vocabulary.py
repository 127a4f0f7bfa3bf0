"""The applicant vocabulary, checked field by field from the VOCABULARY table itself.

Every variable of ../shared/contract/observations.md is exercised through the pydantic `Applicant`
model that is generated from the table: strict types, ranges, enumerations, dates, lab units, the
identity rules, the `.observations()` view and the 422 problem a validation error turns into.
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, create_model

from services.api.errors import validation_problem
from services.problems import Problem
from services.schemas.observations import Applicant
from services.schemas.vocabulary import VOCABULARY, Variable, closest_names

BASE: dict[str, Any] = {"screening_id": "SCR-001", "sex": "female", "age_years": 60}
CANARY = "Jane Roe CANARY-4242"


def by_kind(kind: str) -> list[Any]:
    return [pytest.param(v, id=v.name) for v in VOCABULARY if v.kind == kind]


BOOLS = by_kind("bool")
INTS = by_kind("int")
FLOATS = by_kind("float")
ENUMS = by_kind("enum")
DATES = by_kind("date")
LABS = [pytest.param(v, id=v.name) for v in VOCABULARY if v.units]
OPTIONAL = [pytest.param(v, id=v.name) for v in VOCABULARY if v.name != "sex"]
LAB_UNITS = [pytest.param(v, unit, id=f"{v.name}-{unit}") for v in VOCABULARY for unit in v.units]


def applicant(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


def validate(payload: dict[str, Any]) -> Any:
    return Applicant.model_validate(payload)


def rejection(payload: dict[str, Any], model: type[BaseModel] = Applicant) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        model.model_validate(payload)
    return info.value


def rejected_locs(payload: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(error["loc"]) for error in rejection(payload).errors()]


def problem_for(payload: dict[str, Any], model: type[BaseModel] = Applicant) -> Problem:
    return validation_problem(rejection(payload, model))


# --- the model is the table ---------------------------------------------------------------------


def test_the_model_has_exactly_the_table_variables_plus_the_screening_id() -> None:
    assert set(Applicant.model_fields) == {"screening_id"} | {v.name for v in VOCABULARY}


def test_only_the_screening_id_and_sex_are_required() -> None:
    required = {name for name, info in Applicant.model_fields.items() if info.is_required()}
    assert required == {"screening_id", "sex"}


def test_every_table_variable_has_a_known_kind_and_a_consistent_definition() -> None:
    names = [v.name for v in VOCABULARY]
    assert len(names) == len(set(names))
    for v in VOCABULARY:
        assert v.kind in {"bool", "int", "float", "date", "enum"}, v.name
        if v.kind in {"int", "float"}:
            assert v.low is not None and v.high is not None and v.low < v.high, v.name
        if v.kind == "enum":
            assert v.values and len(v.values) == len(set(v.values)), v.name
        if v.units:
            assert v.kind == "float", v.name


@pytest.mark.parametrize("variable", OPTIONAL)
def test_every_optional_field_accepts_null_as_absent(variable: Variable) -> None:
    payload = {**applicant(birth_date="1960-05-01"), variable.name: None}
    result = validate(payload)
    assert getattr(result, variable.name) is None
    assert variable.name not in result.observations()


# --- bool -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("variable", BOOLS)
def test_a_bool_field_accepts_true_and_false(variable: Variable, value: bool) -> None:
    assert getattr(validate(applicant(**{variable.name: value})), variable.name) is value


@pytest.mark.parametrize("value", ["true", "false", 1, 0, "yes", 1.0])
@pytest.mark.parametrize("variable", BOOLS)
def test_a_bool_field_rejects_anything_but_a_json_boolean(variable: Variable, value: Any) -> None:
    assert rejected_locs(applicant(**{variable.name: value})) == [(variable.name,)]


# --- int ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", INTS)
def test_an_int_field_accepts_its_low_and_high_bounds(variable: Variable) -> None:
    for value in (int(variable.low), int(variable.high)):
        result = getattr(validate(applicant(**{variable.name: value})), variable.name)
        assert result == value and type(result) is int


@pytest.mark.parametrize("variable", INTS)
def test_an_int_field_rejects_one_below_low_and_one_above_high(variable: Variable) -> None:
    for value in (int(variable.low) - 1, int(variable.high) + 1):
        assert rejected_locs(applicant(**{variable.name: value})) == [(variable.name,)]


@pytest.mark.parametrize("value", [1.5, "3", True, False, "", [1]])
@pytest.mark.parametrize("variable", INTS)
def test_an_int_field_rejects_fractions_strings_and_booleans(variable: Variable, value: Any) -> None:
    assert rejected_locs(applicant(**{variable.name: value})) == [(variable.name,)]


# --- float ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", FLOATS)
def test_a_float_field_accepts_ints_and_floats_at_its_bounds(variable: Variable) -> None:
    for value in (variable.low, variable.high, float(variable.low), float(variable.high)):
        result = getattr(validate(applicant(**{variable.name: value})), variable.name)
        assert result == value and type(result) is float
    middle = (variable.low + variable.high) / 2
    assert getattr(validate(applicant(**{variable.name: middle})), variable.name) == middle


@pytest.mark.parametrize("variable", FLOATS)
def test_a_float_field_rejects_values_just_outside_its_bounds(variable: Variable) -> None:
    below = math.nextafter(float(variable.low), -math.inf)
    above = math.nextafter(float(variable.high), math.inf)
    for value in (below, above, variable.low - 1, variable.high + 1):
        assert rejected_locs(applicant(**{variable.name: value})) == [(variable.name,)]


@pytest.mark.parametrize("value", ["1", "1.5", "abc", "", True, False, [1], math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("variable", FLOATS)
def test_a_float_field_rejects_strings_booleans_and_non_finite_numbers(
    variable: Variable, value: Any
) -> None:
    assert rejected_locs(applicant(**{variable.name: value})) == [(variable.name,)]


# --- enum -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ENUMS)
def test_an_enum_field_accepts_every_listed_value(variable: Variable) -> None:
    for value in variable.values:
        assert getattr(validate(applicant(**{variable.name: value})), variable.name) == value


@pytest.mark.parametrize("variable", ENUMS)
def test_an_enum_field_rejects_near_misses_and_unknown_words(variable: Variable) -> None:
    first = variable.values[0]
    near_misses = [first.upper(), first.capitalize(), f" {first}", f"{first} ", "not_a_listed_value", "", 1]
    for value in near_misses:
        assert rejected_locs(applicant(**{variable.name: value})) == [(variable.name,)], value


# --- date -----------------------------------------------------------------------------------------


def in_days(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


@pytest.mark.parametrize("value", ["2020-02-29", "1900-01-01", "2024-12-31"])
@pytest.mark.parametrize("variable", DATES)
def test_a_date_field_accepts_a_real_iso_date(variable: Variable, value: str) -> None:
    result = validate(applicant(**{variable.name: value}))
    assert getattr(result, variable.name) == date.fromisoformat(value)


@pytest.mark.parametrize("variable", DATES)
def test_a_date_field_accepts_today(variable: Variable) -> None:
    today = date.today()
    assert getattr(validate(applicant(**{variable.name: today.isoformat()})), variable.name) == today


BAD_DATES = [
    pytest.param("2020-02-30", id="no-such-day"),
    pytest.param("2019-02-29", id="not-a-leap-year"),
    pytest.param("01/02/2020", id="slashes"),
    pytest.param("2020-1-5", id="unpadded"),
    pytest.param(20200105, id="int"),
    pytest.param("2020-01-05T00:00:00", id="datetime"),
    pytest.param("2020-01-05 ", id="trailing-space"),
    pytest.param("2020-01-05\n", id="trailing-newline"),
    pytest.param("", id="empty"),
    pytest.param(True, id="bool"),
    pytest.param("1899-12-31", id="before-1900"),
    pytest.param(None, id="three-days-ahead"),  # replaced by the date three days from today
]


@pytest.mark.parametrize("value", BAD_DATES)
@pytest.mark.parametrize("variable", DATES)
def test_a_date_field_rejects_malformed_impossible_future_and_pre_1900_dates(
    variable: Variable, value: Any
) -> None:
    value = in_days(3) if value is None else value
    assert rejected_locs(applicant(**{variable.name: value})) == [(variable.name,)]


# --- lab units ------------------------------------------------------------------------------------

# Hand-checked conversions, independent of the table's factors: (value sent, canonical value, tolerance).
COUNT_UNITS_PER_NANOLITRE = ("10^9/L", "10*9/L", "10e9/L", "10^3/uL", "10*3/uL", "K/uL")
COUNT_UNITS_PER_MICROLITRE = ("/uL", "/mm3", "cells/uL")
EXPECTED_CONVERSIONS: dict[tuple[str, str], tuple[float, float, float]] = {
    ("hemoglobin_g_l", "g/L"): (121, 121.0, 0),
    ("hemoglobin_g_l", "g/dL"): (12.1, 121.0, 0),
    ("hemoglobin_g_l", "mmol/L"): (7.5, 120.86, 0.01),
    **{("wbc_10e9_l", unit): (7.5, 7.5, 0) for unit in COUNT_UNITS_PER_NANOLITRE},
    **{("wbc_10e9_l", unit): (7500, 7.5, 0) for unit in COUNT_UNITS_PER_MICROLITRE},
    **{("platelets_10e9_l", unit): (250, 250.0, 0) for unit in COUNT_UNITS_PER_NANOLITRE},
    **{("platelets_10e9_l", unit): (250000, 250.0, 0) for unit in COUNT_UNITS_PER_MICROLITRE},
    ("hba1c_pct", "%"): (7.0, 7.0, 0),
    ("hba1c_pct", "mmol/mol"): (53, 7.0, 0.01),
    ("infrainguinal_stenosis_pct", "%"): (0.9, 0.9, 0),
    ("iliac_stenosis_pct", "%"): (70, 70.0, 0),
    ("lvef_pct", "%"): (55, 55.0, 0),
    ("diary_compliance_pct", "%"): (1, 1.0, 0),
}


@pytest.mark.parametrize(("variable", "unit"), LAB_UNITS)
def test_every_unit_of_a_lab_field_converts_with_the_right_factor(variable: Variable, unit: str) -> None:
    assert (variable.name, unit) in EXPECTED_CONVERSIONS, "a unit without a hand-checked conversion"
    sent, canonical, tolerance = EXPECTED_CONVERSIONS[(variable.name, unit)]
    result = getattr(validate(applicant(**{variable.name: {"value": sent, "unit": unit}})), variable.name)
    if tolerance:
        assert result == pytest.approx(canonical, abs=tolerance)
    else:
        assert result == canonical


def test_the_expected_conversions_cover_exactly_the_units_of_the_table() -> None:
    assert set(EXPECTED_CONVERSIONS) == {(v.name, unit) for v in VOCABULARY for unit in v.units}


def test_hemoglobin_in_g_per_dl_is_multiplied_by_ten() -> None:
    result = validate(applicant(hemoglobin_g_l={"value": 12.1, "unit": "g/dL"}))
    assert result.hemoglobin_g_l == 121.0


def test_a_count_per_microlitre_is_divided_by_a_thousand() -> None:
    result = validate(applicant(platelets_10e9_l={"value": 250000, "unit": "/uL"}))
    assert result.platelets_10e9_l == 250.0


def test_a_count_in_thousands_per_microlitre_is_kept_as_is() -> None:
    result = validate(applicant(wbc_10e9_l={"value": 7.5, "unit": "10^3/uL"}))
    assert result.wbc_10e9_l == 7.5


def test_hba1c_in_mmol_per_mol_is_converted_with_the_ngsp_master_equation() -> None:
    result = validate(applicant(hba1c_pct={"value": 53, "unit": "mmol/mol"}))
    assert result.hba1c_pct == pytest.approx(7.0, abs=0.01)
    assert result.hba1c_pct == pytest.approx(0.09148 * 53 + 2.152)


@pytest.mark.parametrize(
    ("name", "unit", "sent", "canonical"),
    [
        ("hemoglobin_g_l", "G/DL", 12.1, 121.0),
        ("hemoglobin_g_l", "g/dl", 12.1, 121.0),
        ("hemoglobin_g_l", "G/l", 121, 121.0),
        ("platelets_10e9_l", "/UL", 250000, 250.0),
        ("platelets_10e9_l", "/µL", 250000, 250.0),
        ("platelets_10e9_l", "10^3/µL", 250, 250.0),
        ("wbc_10e9_l", "Cells/µL", 7500, 7.5),
        ("wbc_10e9_l", "k/µl", 7.5, 7.5),
        ("wbc_10e9_l", "10E9/l", 7.5, 7.5),
        ("hba1c_pct", "MMOL/MOL", 53, pytest.approx(7.0, abs=0.01)),
    ],
)
def test_units_match_ignoring_case_and_accept_the_micro_sign(
    name: str, unit: str, sent: float, canonical: Any
) -> None:
    assert getattr(validate(applicant(**{name: {"value": sent, "unit": unit}})), name) == canonical


@pytest.mark.parametrize("variable", LABS)
def test_a_lab_field_still_accepts_a_bare_number_in_its_canonical_unit(variable: Variable) -> None:
    middle = (variable.low + variable.high) / 2
    assert getattr(validate(applicant(**{variable.name: middle})), variable.name) == middle


def foreign_units(variable: Variable) -> list[str]:
    own = {unit.lower() for unit in variable.units}
    return sorted({u for other in VOCABULARY for u in other.units if u.lower() not in own})


@pytest.mark.parametrize("variable", LABS)
def test_a_lab_field_rejects_an_unknown_or_incompatible_unit_naming_the_field(variable: Variable) -> None:
    for unit in ["furlongs", "mg/dL", "", "g / dL", *foreign_units(variable)]:
        payload = applicant(**{variable.name: {"value": variable.low + 1, "unit": unit}})
        assert rejected_locs(payload) == [(variable.name,)], unit


@pytest.mark.parametrize("variable", LABS)
def test_a_lab_field_rejects_a_malformed_value_object_naming_the_field(variable: Variable) -> None:
    unit = next(iter(variable.units))
    malformed = [
        {"value": 50},
        {"unit": unit},
        {},
        {"value": 50, "unit": unit, "note": "fasting"},
        {"value": 50, "unit": unit, "source": "lab"},
        {"value": 50, "units": unit},
        {"value": 50, "unit": None},
        {"value": 50, "unit": 10},
        {"value": 50, "unit": [unit]},
    ]
    for value in malformed:
        assert rejected_locs(applicant(**{variable.name: value})) == [(variable.name,)], value


@pytest.mark.parametrize("sent", ["12", "twelve", "", True, False, None, [12], {"value": 12}])
@pytest.mark.parametrize("variable", LABS)
def test_a_lab_field_rejects_a_non_numeric_value_in_a_value_object(variable: Variable, sent: Any) -> None:
    unit = next(iter(variable.units))
    payload = applicant(**{variable.name: {"value": sent, "unit": unit}})
    assert rejected_locs(payload) == [(variable.name,)]


@pytest.mark.parametrize(("variable", "unit"), LAB_UNITS)
def test_a_converted_lab_value_outside_the_range_is_rejected_naming_the_field(
    variable: Variable, unit: str
) -> None:
    factor, offset = variable.units[unit]
    span = variable.high - variable.low
    for canonical in (variable.high + span / 10 + 1, variable.low - span / 10 - 1):
        sent = (canonical - offset) / factor
        payload = applicant(**{variable.name: {"value": sent, "unit": unit}})
        assert rejected_locs(payload) == [(variable.name,)], sent


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("hemoglobin_g_l", {"value": 30, "unit": "g/dL"}),
        ("hemoglobin_g_l", {"value": 1.5, "unit": "g/dL"}),
        ("wbc_10e9_l", {"value": 600000, "unit": "/uL"}),
        ("platelets_10e9_l", {"value": 4000, "unit": "10^3/uL"}),
        ("platelets_10e9_l", {"value": -1, "unit": "/uL"}),
        ("hba1c_pct", {"value": 250, "unit": "mmol/mol"}),
        ("hba1c_pct", {"value": 5, "unit": "mmol/mol"}),
    ],
)
def test_plausibility_is_checked_after_conversion(name: str, value: dict[str, Any]) -> None:
    problem = problem_for(applicant(**{name: value}))
    assert [error["field"] for error in problem.errors or []] == [name]


# --- identity -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["name", "address", "mrn", "patient_name", "first_name", "email", "phone", "Sex", "ageYears"]
)
def test_an_unknown_field_is_rejected_by_name(field: str) -> None:
    errors = rejection(applicant(**{field: "x"})).errors()
    assert [(tuple(e["loc"]), e["type"]) for e in errors] == [((field,), "extra_forbidden")]


@pytest.mark.parametrize("screening_id", ["A", "scr-001", "SITE_3.2024-17", "0", "a" * 64, "._-"])
def test_a_screening_id_of_allowed_characters_and_1_to_64_long_is_accepted(screening_id: str) -> None:
    assert validate(applicant(screening_id=screening_id)).screening_id == screening_id


@pytest.mark.parametrize(
    "screening_id",
    [
        pytest.param("", id="empty"),
        pytest.param("a" * 65, id="65-chars"),
        pytest.param("SCR 001", id="space"),
        pytest.param("SCR/001", id="slash"),
        pytest.param("SCR#1", id="hash"),
        pytest.param("Müller", id="non-ascii-letter"),
        pytest.param("SCR-001\n", id="trailing-newline"),
        pytest.param(1, id="int"),
        pytest.param(None, id="null"),
    ],
)
def test_a_screening_id_outside_the_pattern_or_length_is_rejected(screening_id: Any) -> None:
    assert rejected_locs(applicant(screening_id=screening_id)) == [("screening_id",)]


def test_a_missing_screening_id_is_rejected() -> None:
    payload = {k: v for k, v in BASE.items() if k != "screening_id"}
    assert rejected_locs(payload) == [("screening_id",)]


def test_a_missing_sex_is_an_error_at_sex() -> None:
    payload = {k: v for k, v in BASE.items() if k != "sex"}
    errors = rejection(payload).errors()
    assert [(tuple(e["loc"]), e["type"]) for e in errors] == [(("sex",), "missing")]


def test_a_null_sex_is_an_error_at_sex() -> None:
    assert rejected_locs(applicant(sex=None)) == [("sex",)]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"screening_id": "SCR-001", "sex": "male"}, id="both-absent"),
        pytest.param(
            {"screening_id": "SCR-001", "sex": "male", "birth_date": None, "age_years": None}, id="null"
        ),
        pytest.param({"screening_id": "SCR-001", "sex": "male", "birth_date": None}, id="birth-date-null"),
        pytest.param({"screening_id": "SCR-001", "sex": "male", "age_years": None}, id="age-null"),
    ],
)
def test_without_birth_date_or_age_the_error_is_at_age_years_saying_one_is_required(
    payload: dict[str, Any],
) -> None:
    errors = rejection(payload).errors()
    assert [tuple(e["loc"]) for e in errors] == [("age_years",)]
    message = errors[0]["msg"]
    assert "one of" in message and "birth_date" in message and "age_years" in message
    assert "required" in message


@pytest.mark.parametrize(
    "fields",
    [{"birth_date": "1960-05-01"}, {"age_years": 64}, {"birth_date": "1960-05-01", "age_years": 64}],
    ids=["birth-date-only", "age-only", "both"],
)
def test_either_birth_date_or_age_is_enough(fields: dict[str, Any]) -> None:
    observations = validate({"screening_id": "SCR-001", "sex": "male", **fields}).observations()
    assert observations == {"sex": "male", **fields}


@pytest.mark.parametrize("value", BAD_DATES)
def test_an_invalid_birth_date_reports_only_the_birth_date_error(value: Any) -> None:
    value = in_days(3) if value is None else value
    payload = {"screening_id": "SCR-001", "sex": "female", "birth_date": value}
    assert rejected_locs(payload) == [("birth_date",)]


def test_an_invalid_age_without_birth_date_reports_only_the_age_error() -> None:
    errors = rejection({"screening_id": "SCR-001", "sex": "female", "age_years": 121}).errors()
    assert [tuple(e["loc"]) for e in errors] == [("age_years",)]
    assert "one of" not in errors[0]["msg"]


# --- the 422 problem ------------------------------------------------------------------------------

Wrapper = create_model("Wrapper", applicant=(Applicant, ...))


class Batch(BaseModel):
    applicants: list[Applicant]  # type: ignore[valid-type]


def test_a_validation_problem_is_a_422_validation_error_naming_the_fields() -> None:
    problem = problem_for(applicant(sex="FEMALE", abi=9))
    assert problem.status == 422
    assert problem.kind == "validation-error"
    assert problem.errors is not None
    assert sorted((e["field"], e["pointer"]) for e in problem.errors) == [("abi", "/abi"), ("sex", "/sex")]
    assert "sex" in problem.detail and "abi" in problem.detail
    body = problem.body()
    assert body["status"] == 422
    assert body["type"] == "/problems/validation-error"
    assert body["errors"] == problem.errors


def test_each_problem_error_has_exactly_a_field_a_pointer_and_a_detail() -> None:
    problem = problem_for(applicant(stroke="yes", race="martian", mrn="123", hba1c_pct={"value": 1}))
    assert problem.errors
    for error in problem.errors:
        assert set(error) == {"field", "pointer", "detail"}
        assert error["detail"] and not error["detail"].startswith("Value error")


def test_a_nested_applicant_error_has_a_dotted_field_and_a_json_pointer() -> None:
    problem = problem_for(
        {"applicant": applicant(sex="other", hemoglobin_g_l={"value": 1, "unit": "x"})}, Wrapper
    )
    assert problem.errors is not None
    by_field = {e["field"]: e["pointer"] for e in problem.errors}
    assert by_field == {
        "applicant.sex": "/applicant/sex",
        "applicant.hemoglobin_g_l": "/applicant/hemoglobin_g_l",
    }
    assert "applicant.sex" in problem.detail


def test_a_nested_missing_sex_points_into_the_applicant() -> None:
    payload = {"applicant": {k: v for k, v in BASE.items() if k != "sex"}}
    problem = problem_for(payload, Wrapper)
    assert [(e["field"], e["pointer"]) for e in problem.errors or []] == [("applicant.sex", "/applicant/sex")]


def test_an_applicant_in_a_list_is_pointed_at_by_index() -> None:
    problem = problem_for({"applicants": [applicant(), applicant(age_years=-1)]}, Batch)
    errors = [(e["field"], e["pointer"]) for e in problem.errors or []]
    assert errors == [("applicants.1.age_years", "/applicants/1/age_years")]


@pytest.mark.parametrize(
    ("key", "pointer"),
    [
        ("odd/key", "/applicant/odd~1key"),
        ("tilde~key", "/applicant/tilde~0key"),
        ("dotted.key", "/applicant/dotted.key"),
    ],
)
def test_the_pointer_of_an_unknown_field_escapes_it_as_rfc_6901_says(key: str, pointer: str) -> None:
    problem = problem_for({"applicant": applicant(**{key: 1})}, Wrapper)
    assert [e["pointer"] for e in problem.errors or []] == [pointer]


CANARY_PAYLOADS = [
    pytest.param({"stroke": CANARY}, id="bool"),
    pytest.param({"rutherford_grade": CANARY}, id="int"),
    pytest.param({"abi": CANARY}, id="float"),
    pytest.param({"race": CANARY}, id="enum"),
    pytest.param({"stroke_date": CANARY}, id="date"),
    pytest.param({"screening_id": CANARY}, id="screening-id"),
    pytest.param({"patient_name": CANARY}, id="unknown-field"),
    pytest.param({"hemoglobin_g_l": CANARY}, id="lab-bare"),
    pytest.param({"hemoglobin_g_l": {"value": CANARY, "unit": "g/dL"}}, id="lab-value"),
    pytest.param({"hemoglobin_g_l": {"value": 12, "unit": CANARY}}, id="lab-unit"),
    pytest.param({"hemoglobin_g_l": {"value": 12, "unit": [CANARY]}}, id="lab-unit-list"),
    pytest.param({"hemoglobin_g_l": {"value": 12, "unit": "g/dL", "note": CANARY}}, id="lab-extra-key"),
]


@pytest.mark.parametrize("bad", CANARY_PAYLOADS)
def test_the_rejected_value_never_appears_in_the_problem_body(bad: dict[str, Any]) -> None:
    problem = problem_for(applicant(**bad))
    assert problem.errors, "the payload must be rejected"
    assert CANARY not in str(problem.body())
    assert CANARY not in json.dumps(problem.body(instance="/api/v1/applications"))


@pytest.mark.parametrize("bad", CANARY_PAYLOADS)
def test_the_rejected_value_never_appears_in_the_problem_body_of_a_nested_applicant(
    bad: dict[str, Any],
) -> None:
    problem = problem_for({"applicant": applicant(**bad)}, Wrapper)
    assert problem.errors and all(e["field"].startswith("applicant.") for e in problem.errors)
    assert CANARY not in str(problem.body())


# --- observations() -------------------------------------------------------------------------------


def test_observations_drop_the_screening_id_and_absent_fields_and_keep_canonical_json_values() -> None:
    payload = applicant(
        birth_date="1961-07-14",
        stroke=False,
        stroke_date=None,
        myocardial_infarction=True,
        myocardial_infarction_date="2020-02-29",
        race=None,
        rutherford_grade=4,
        abi=1,
        ulcer_count=0,
        gangrene="dry_toe",
        hemoglobin_g_l={"value": 12.1, "unit": "g/dL"},
        platelets_10e9_l={"value": 250000, "unit": "/uL"},
    )
    observations = validate(payload).observations()
    assert observations == {
        "birth_date": "1961-07-14",
        "age_years": 60,
        "sex": "female",
        "stroke": False,
        "myocardial_infarction": True,
        "myocardial_infarction_date": "2020-02-29",
        "rutherford_grade": 4,
        "abi": 1.0,
        "ulcer_count": 0,
        "gangrene": "dry_toe",
        "hemoglobin_g_l": 121.0,
        "platelets_10e9_l": 250.0,
    }
    assert json.loads(json.dumps(observations)) == observations


def test_observations_of_a_minimal_applicant_are_only_what_was_sent() -> None:
    assert validate(applicant()).observations() == {"sex": "female", "age_years": 60}


@pytest.mark.parametrize("variable", DATES)
def test_observations_keep_every_date_field_as_an_iso_string(variable: Variable) -> None:
    observations = validate(applicant(**{variable.name: "2020-02-29"})).observations()
    assert observations[variable.name] == "2020-02-29"
    assert "screening_id" not in observations


@pytest.mark.parametrize("variable", BOOLS)
def test_observations_keep_a_known_negative(variable: Variable) -> None:
    assert validate(applicant(**{variable.name: False})).observations()[variable.name] is False


# --- input that helps (issue 14, part 3) -------------------------------------------------------------


def refusal(**observations: Any) -> str:
    """The one message a refused applicant gets."""
    with pytest.raises(ValidationError) as refused:
        validate(applicant(**observations))
    [error] = refused.value.errors(include_url=False)
    return str(error["msg"]).removeprefix("Value error, ")


def test_a_number_out_of_range_names_the_unit_and_the_unit_form_that_would_fit() -> None:
    message = refusal(hemoglobin_g_l=12.1)
    assert message.startswith("is below 20 g/L (accepted: 20 g/L to 250 g/L)")
    assert 'in g/dL it would be in range: send {"value": number, "unit": "g/dL"}' in message
    assert "12.1" not in message  # a refused value is never echoed


def test_units_that_convert_alike_are_suggested_together() -> None:
    message = refusal(wbc_10e9_l=7500)
    assert 'in /uL or /mm3 or cells/uL it would be in range: send {"value": number, "unit": "/uL"}' in message
    assert message.count("send") == 1


def test_a_value_sent_with_a_unit_is_refused_naming_the_conversion() -> None:
    assert (
        refusal(hemoglobin_g_l={"value": 30, "unit": "g/dL"})
        == "is above 250 g/L after conversion from g/dL (accepted: 20 g/L to 250 g/L)"
    )


def test_a_number_no_unit_brings_into_range_lists_the_units_accepted() -> None:
    message = refusal(hemoglobin_g_l=5000)
    assert message == "is above 250 g/L (accepted: 20 g/L to 250 g/L); units accepted: g/L, g/dL, mmol/L"
    assert refusal(abi=4) == "is above 3 (accepted: 0 to 3)"  # unitless, no other unit


@pytest.mark.parametrize("fraction", [0.9, 1, 0.05])
def test_a_fraction_sent_for_a_percentage_is_refused_with_the_way_to_send_either(fraction: float) -> None:
    message = refusal(infrainguinal_stenosis_pct=fraction)
    assert message.startswith("looks like a fraction")
    assert 'or {"value": number, "unit": "%"} when a percentage at or below 1 is meant' in message


def test_a_small_percentage_sent_with_its_unit_and_zero_are_accepted() -> None:
    assert (
        validate(applicant(infrainguinal_stenosis_pct={"value": 0.9, "unit": "%"})).infrainguinal_stenosis_pct
        == 0.9
    )
    assert validate(applicant(infrainguinal_stenosis_pct=0)).infrainguinal_stenosis_pct == 0
    assert validate(applicant(iliac_stenosis_pct=1.5)).iliac_stenosis_pct == 1.5


def test_every_percentage_of_the_vocabulary_takes_the_percent_unit() -> None:
    percentages = [v for v in VOCABULARY if v.name.endswith("_pct")]
    assert percentages and all("%" in v.units for v in percentages)


@pytest.mark.parametrize(
    ("sent", "meant"),
    [("hemoglobin", ["hemoglobin_g_l"]), ("ABI", ["abi"]), ("hemoglobn_g_l", ["hemoglobin_g_l"]),
     ("platelet", ["platelets_10e9_l"]), ("zzz_unknown", [])],
)  # fmt: skip
def test_an_unknown_name_gets_the_vocabulary_names_it_most_likely_meant(sent: str, meant: list[str]) -> None:
    assert closest_names(sent) == meant
