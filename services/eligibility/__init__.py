"""The eligibility engine: criteria as data, compiled once per version, evaluated with Kleene logic.

Pure: imports neither Flask, SQLAlchemy nor Celery, so it can be tested and benchmarked alone.
"""

from services.eligibility.compiler import CriteriaError, compile_criteria
from services.eligibility.model import (
    CompiledCriteria,
    CriterionResult,
    Evaluation,
    VariableSpec,
    decide,
)

__all__ = [
    "CompiledCriteria",
    "CriteriaError",
    "CriterionResult",
    "Evaluation",
    "VariableSpec",
    "compile_criteria",
    "decide",
]
