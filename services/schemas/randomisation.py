"""Request and response models of randomisation (contract v1.2): the scheme and the code-break."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.schemas.api import Identifier
from services.schemas.vocabulary import VOCABULARY

SITE = "site"
MAX_STRATUM_LEVELS = 10  # an int variable with more values than this is no stratification factor
DISCRETE = {
    variable.name: variable
    for variable in VOCABULARY
    if variable.kind in ("bool", "enum")
    or (
        variable.kind == "int"
        and variable.low is not None
        and variable.high is not None
        and variable.high - variable.low < MAX_STRATUM_LEVELS
    )
}


def _discrete(name: str) -> str:
    if name != SITE and name not in DISCRETE:
        raise ValueError(
            f"{name!r} is not site or an observation with a few values (bool, enum, or int with at most "
            f"{MAX_STRATUM_LEVELS} values): stratify and minimise only on those"
        )
    return name


class ArmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm_id: Identifier
    ratio: int = Field(default=1, ge=1, le=20, description="Its share of the allocation ratio")
    label: str | None = Field(default=None, max_length=300)


class FactorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variable: str = Field(max_length=64, description="site, or an observation with a few values")
    weight: float = Field(default=1.0, gt=0, le=100)

    _discrete = field_validator("variable")(_discrete)


class RandomisationIn(BaseModel):
    """A trial's randomisation scheme (contract v1.2)."""

    # `list` is the contract's name; the attribute is `listed`, since a field named list would hide the
    # builtin from the other fields' annotations.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: Literal["permuted_blocks", "minimisation"]
    arms: list[ArmIn] | None = Field(
        default=None,
        min_length=2,
        max_length=10,
        description="Omitted: the arms of the trial's registry record (armsInterventionsModule), ratio 1:1",
    )
    strata: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=3,
        description="Permuted blocks: site and up to two observations with a few values",
    )
    block_sizes: list[int] = Field(
        default_factory=list,
        max_length=6,
        description="Permuted blocks: multiples of the ratio sum, one drawn at random per block",
    )
    factors: list[FactorIn] = Field(default_factory=list, max_length=6, description="Minimisation")
    probability: float = Field(
        default=0.85, ge=0.5, le=1.0, description="Minimisation: the chance of the least-imbalanced arm"
    )
    imbalance: Literal["range", "variance"] = Field(default="range", description="Minimisation")
    listed: str | None = Field(
        default=None,
        alias="list",
        max_length=4_000_000,
        description="Permuted blocks: an independent statistician's allocation list, CSV "
        "`sequence,stratum,arm`, used in order within each stratum instead of a generated one",
    )

    @field_validator("arms")
    @classmethod
    def _arms_once(cls, arms: list[ArmIn] | None) -> list[ArmIn] | None:
        if arms is not None and len({arm.arm_id for arm in arms}) != len(arms):
            raise ValueError("each arm_id once")
        return arms

    @field_validator("strata")
    @classmethod
    def _strata(cls, strata: list[str]) -> list[str]:
        for name in strata:
            _discrete(name)
        if len(set(strata)) != len(strata):
            raise ValueError("each variable once")
        if len([name for name in strata if name != SITE]) > 2:
            raise ValueError("site and up to two observations")
        return strata

    @field_validator("factors")
    @classmethod
    def _factors_once(cls, factors: list[FactorIn]) -> list[FactorIn]:
        # A factor listed twice would count its level twice (the site, say) in every imbalance.
        if len({factor.variable for factor in factors}) != len(factors):
            raise ValueError("each variable once: a site (or any factor) is never counted twice")
        return factors


class ArmOut(BaseModel):
    arm_id: str
    ratio: int
    label: str | None


class FactorOut(BaseModel):
    variable: str
    weight: float


class RandomisationOut(BaseModel):
    trial_id: str
    method: Literal["permuted_blocks", "minimisation"]
    algorithm: str = Field(description="The algorithm and its version, as the commitment fixes them")
    arms: list[ArmOut]
    strata: list[str]
    block_sizes: list[int]
    factors: list[FactorOut]
    probability: float
    imbalance: Literal["range", "variance"]
    list_uploaded: bool
    commitment: str = Field(
        description="sha256 over the algorithm, parameters and seed (and an uploaded list): keep it; "
        "`accrual allocation verify` proves every allocation followed it"
    )
    allocated: int
    created_at: datetime


class UnblindIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=2000, description="Why the code must be broken: audited")
