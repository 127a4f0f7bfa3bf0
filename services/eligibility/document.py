"""The criteria file format (YAML or JSON), validated at the edge with pydantic."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CRITERION_ID = re.compile(r"^[IE][1-9][0-9]*(\.[a-z0-9]+)?$")


class CriterionSpec(BaseModel):
    """One protocol criterion: exactly one of `rule` (a rule expression) or `judgment: true`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="I1..In for inclusion, E1..En for exclusion, as the protocol numbers them")
    kind: Literal["inclusion", "exclusion"]
    text: str = Field(min_length=1, max_length=4000, description="The protocol's own words")
    rule: dict[str, Any] | None = None
    judgment: bool = False
    reading: str | None = Field(default=None, description="How an ambiguous text was read, and why")

    @model_validator(mode="after")
    def _consistent(self) -> CriterionSpec:
        if not CRITERION_ID.match(self.id):
            raise ValueError(f"criterion id {self.id!r} is not of the form I1, E2 or I2.a")
        if (self.id[0] == "I") != (self.kind == "inclusion"):
            raise ValueError(f"criterion {self.id} has kind {self.kind}")
        if (self.rule is None) == (not self.judgment):
            raise ValueError(f"criterion {self.id} needs exactly one of `rule` or `judgment: true`")
        return self


class CriteriaDocument(BaseModel):
    """A trial's whole criteria set, as shipped in a criteria file or sent to PUT .../criteria."""

    model_config = ConfigDict(extra="forbid")

    trial_id: str = Field(min_length=1, max_length=64)
    source: str | None = Field(default=None, description="Where the protocol text was taken from")
    criteria: list[CriterionSpec] = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _unique_ids(self) -> CriteriaDocument:
        seen: set[str] = set()
        for criterion in self.criteria:
            if criterion.id in seen:
                raise ValueError(f"criterion id {criterion.id} appears twice")
            seen.add(criterion.id)
        return self
