"""A trial's registry fields are declared once (TrialRegistryFields) and agree with the `trials` table."""

from __future__ import annotations

import types
from typing import Any

from models import Trial
from services.schemas.api import TrialOut, TrialRegistryFields
from services.trials.registry import TrialFields, trial_from_record
from tests.support.registry import new_study

COLUMNS = Trial.__table__.columns


def optional(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) and type(None) in annotation.__args__


def test_every_registry_field_is_a_column_of_trials_as_nullable_as_its_column() -> None:
    for name, declared in TrialRegistryFields.model_fields.items():
        assert name in COLUMNS, f"{name} is no column of trials"
        assert optional(declared.annotation) == COLUMNS[name].nullable, name


def test_a_trial_answer_opens_with_the_registry_fields_in_their_order() -> None:
    registry = list(TrialRegistryFields.model_fields)
    assert list(TrialOut.model_fields)[: len(registry)] == registry
    assert list(TrialOut.model_fields)[len(registry) :] == [
        "applied_count",
        "enrolled_count",
        "criteria_version",
    ]


def test_a_study_record_gives_every_registry_field_and_its_sites() -> None:
    fields = trial_from_record(new_study())
    assert isinstance(fields, TrialFields)
    assert list(fields.model_dump(exclude={"sites"})) == list(TrialRegistryFields.model_fields)
    assert [site.name for site in fields.sites] == ["Hospital A", "Hospital B"]
