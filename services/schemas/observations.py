"""The `applicant` object: the vocabulary's pydantic model, strict types, ranges and unit conversion."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    WithJsonSchema,
    create_model,
    field_validator,
)

from services.schemas.vocabulary import VOCABULARY, Variable, canonical_unit

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EARLIEST_DATE = date(1900, 1, 1)
REQUIRED = frozenset({"sex"})
CHECKED_WHEN_ABSENT = frozenset({"age_years"})


def _iso_date_only(value: Any) -> Any:
    if isinstance(value, str) and not ISO_DATE.match(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    if not isinstance(value, str | date):
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


def _plausible_date(value: date) -> date:
    # A day's grace: a site east of UTC may already be on tomorrow's date.
    latest = datetime.now(UTC).date() + timedelta(days=1)
    if value > latest:
        raise ValueError("must not be in the future")
    if value < EARLIEST_DATE:
        raise ValueError("must not be before 1900-01-01")
    return value


LARGEST_NUMBER = 1e9  # far beyond every range in the vocabulary; keeps float conversion from overflowing


def _number_only(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if not -LARGEST_NUMBER <= value <= LARGEST_NUMBER:
        raise ValueError("is out of range")
    return value


def _unit_key(unit: str) -> str:
    # Both the micro sign (U+00B5) and the Greek letter mu (U+03BC) are written for "micro".
    return unit.strip().lower().replace("\u00b5", "u").replace("\u03bc", "u")


# A refused value is never echoed back (nor logged): a message names the field's unit, its limits and the
# form to send instead, with `number` where the value goes.


def _unit_form(unit: str) -> str:
    return f'{{"value": number, "unit": "{unit}"}}'


def _limit(value: float | None, unit: str) -> str:
    return f"{value:g} {unit}" if unit else f"{value:g}"


def _fraction_for_percentage(variable: Variable, value: float) -> None:
    """A percentage at or below 1 is most often a fraction (0.9 for 90 %): refused unless the unit says
    it is meant (docs/observations.md, "Plausibility rules")."""
    if variable.name.endswith("_pct") and 0 < value <= 1:
        raise ValueError(
            f"looks like a fraction, but {variable.name} is a percentage: send 90, not 0.9, for 90 %; "
            f"or {_unit_form('%')} when a percentage at or below 1 is meant"
        )


def _range_hint(variable: Variable, value: float) -> str:
    """For a bare number out of range: the units in which it would be in range, else those accepted."""
    fitting: dict[tuple[float, float], list[str]] = {}  # units that convert alike, named together
    for unit, factors in variable.units.items():
        factor, offset = factors
        if factors != (1.0, 0.0) and _in_range(variable, value * factor + offset):
            fitting.setdefault(factors, []).append(unit)
    if fitting:
        return "; in " + "; in ".join(
            f"{' or '.join(units)} it would be in range: send {_unit_form(units[0])}"
            for units in fitting.values()
        )
    if len(variable.units) > 1:
        return "; units accepted: " + ", ".join(variable.units)
    return ""


def _in_range(variable: Variable, value: float) -> bool:
    low = -LARGEST_NUMBER if variable.low is None else variable.low
    high = LARGEST_NUMBER if variable.high is None else variable.high
    return low <= value <= high


def _check_range(variable: Variable, value: float, sent_in: str | None = None) -> float:
    """`value` (canonical) within the vocabulary's range, or a message naming the unit, the limits and
    the way to send the value in another unit; `sent_in` is the unit it came in, when converted."""
    if _in_range(variable, value):
        return value
    unit = canonical_unit(variable)
    low, high = _limit(variable.low, unit), _limit(variable.high, unit)
    below = variable.low is not None and value < variable.low
    where = f"is below {low}" if below else f"is above {high}"
    if sent_in is not None:
        raise ValueError(f"{where} after conversion from {sent_in} (accepted: {low} to {high})")
    raise ValueError(f"{where} (accepted: {low} to {high}){_range_hint(variable, value)}")


def _unit_converter(variable: Variable) -> Any:
    units = {_unit_key(name): factors for name, factors in variable.units.items()}
    accepted = ", ".join(variable.units)

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            number = _number_only(value)
            _fraction_for_percentage(variable, number)
            return _check_range(variable, number)
        if set(value) != {"value", "unit"}:
            raise ValueError('must be a number or {"value": number, "unit": string}')
        unit = value["unit"]
        if not isinstance(unit, str) or _unit_key(unit) not in units:
            raise ValueError(f"unit must be one of: {accepted}")
        factor, offset = units[_unit_key(unit)]
        number = _number_only(value["value"])
        sent_in = unit.strip() if (factor, offset) != (1.0, 0.0) else None
        return _check_range(variable, round(number * factor + offset, 6), sent_in)

    return convert


def _plain_number(variable: Variable) -> Any:
    def check(value: Any) -> Any:
        number = _number_only(value)
        _fraction_for_percentage(variable, number)
        return _check_range(variable, number)

    return check


def _number_schema(variable: Variable) -> dict[str, Any]:
    return {"type": "number", "minimum": variable.low, "maximum": variable.high}


def _lab_schema(variable: Variable) -> dict[str, Any]:
    return {
        "oneOf": [
            _number_schema(variable),
            {
                "type": "object",
                "required": ["value", "unit"],
                "additionalProperties": False,
                "properties": {"value": {"type": "number"}, "unit": {"enum": list(variable.units)}},
            },
        ],
        "description": "; ".join(filter(None, (variable.doc, _plausibility(variable)))),
    }


def _plausibility(variable: Variable) -> str:
    if not variable.name.endswith("_pct"):
        return ""
    return (
        'a bare number above 0 and at most 1 is refused as a likely fraction: send {"value": v, "unit": "%"}'
    )


def _field_type(variable: Variable) -> Any:
    if variable.kind == "bool":
        return StrictBool
    if variable.kind == "int":
        return Annotated[StrictInt, Field(ge=variable.low, le=variable.high)]
    if variable.kind == "date":
        return Annotated[date, BeforeValidator(_iso_date_only), AfterValidator(_plausible_date)]
    if variable.kind == "enum":
        return Literal[variable.values]
    # Numbers are range-checked by their own validators, whose messages name the unit and the
    # {"value", "unit"} form (pydantic's would say only "greater than or equal to 20").
    if variable.units:
        return Annotated[
            float, BeforeValidator(_unit_converter(variable)), WithJsonSchema(_lab_schema(variable))
        ]
    return Annotated[
        float, BeforeValidator(_plain_number(variable)), WithJsonSchema(_number_schema(variable))
    ]


def _field_definition(variable: Variable) -> tuple[Any, Any]:
    if variable.name in REQUIRED:
        return (_field_type(variable), Field(description=variable.doc or None))
    if variable.name in CHECKED_WHEN_ABSENT:
        return (
            _field_type(variable) | None,
            Field(default=None, description=variable.doc, validate_default=True),
        )
    return (_field_type(variable) | None, Field(default=None, description=variable.doc or None))


class ObservationsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("age_years", mode="after", check_fields=False)
    @classmethod
    def _age_known(cls, value: int | None, info: ValidationInfo) -> int | None:
        # birth_date is absent from info.data when it was sent but invalid: that error is reported already.
        if value is None and "birth_date" in info.data and info.data["birth_date"] is None:
            raise ValueError("one of birth_date or age_years is required")
        return value

    def observations(self) -> dict[str, Any]:
        """The clinical observations sent, in canonical units, JSON-ready; absent ones are left out."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"screening_id"})


ScreeningId = Annotated[
    str,
    Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
        description="The site's own screening number; unique per (trial, site). No names or record numbers.",
    ),
]  # fmt: skip


class ApplicantBase(ObservationsBase):
    screening_id: ScreeningId


class ChangesBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def changes(self) -> tuple[dict[str, Any], list[str]]:
        """(values to set, in canonical units; names sent as null, to remove)."""
        sent = self.model_dump(mode="json", include=self.model_fields_set)
        return (
            {name: value for name, value in sent.items() if value is not None},
            sorted(name for name, value in sent.items() if value is None),
        )


VOCABULARY_FIELDS = {v.name: _field_definition(v) for v in VOCABULARY}

Applicant: type[ApplicantBase] = create_model(  # type: ignore[call-overload]
    "Applicant",
    __base__=ApplicantBase,
    __doc__="An applicant in the observations.md vocabulary. Absent means unknown; unknown fields refused.",
    **VOCABULARY_FIELDS,
)

Observations: type[ObservationsBase] = create_model(  # type: ignore[call-overload]
    "Observations",
    __base__=ObservationsBase,
    __doc__="An applicant's observations without a screening id (prescreening stores nothing).",
    **VOCABULARY_FIELDS,
)

ObservationChanges: type[ChangesBase] = create_model(  # type: ignore[call-overload]
    "ObservationChanges",
    __base__=ChangesBase,
    __doc__="Observations to add or correct; a field sent as null is removed (becomes unknown).",
    **{v.name: (_field_type(v) | None, Field(default=None, description=v.doc or None)) for v in VOCABULARY},
)
