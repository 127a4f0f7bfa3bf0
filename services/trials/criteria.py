"""Criteria sets: stored versions, compiled once per version and kept compiled for the process."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import CriteriaVersion, Trial
from services.eligibility import CompiledCriteria, CriteriaError, compile_criteria

__all__ = ["CriteriaError", "add_version", "bundled_document", "compile_document", "compiled_version"]
from services.schemas.vocabulary import VARIABLES


def compile_document(document: dict[str, Any]) -> CompiledCriteria:
    """Compile against the public vocabulary; raises CriteriaError naming the faulty criterion."""
    return compile_criteria(document, VARIABLES)


# (database, trial, version) -> compiled set. Versions are immutable, so an entry never goes stale.
_COMPILED: dict[tuple[str, str, int], CompiledCriteria] = {}
_CACHE_LIMIT = 512


def compiled_version(session: Session, trial_id: str, version: int) -> CompiledCriteria:
    """The compiled criteria of one stored version, compiled on first use in this process."""
    key = (str(session.get_bind().engine.url), trial_id, version)
    cached = _COMPILED.get(key)
    if cached is not None:
        return cached
    row = session.scalar(
        select(CriteriaVersion).where(
            CriteriaVersion.trial_id == trial_id, CriteriaVersion.version == version
        )
    )
    if row is None:
        raise LookupError(f"criteria version {version} of {trial_id} does not exist")
    if len(_COMPILED) >= _CACHE_LIMIT:
        _COMPILED.clear()
    _COMPILED[key] = compiled = compile_document(row.document)
    return compiled


def add_version(session: Session, trial: Trial, document: dict[str, Any]) -> CriteriaVersion:
    """Store a new criteria version (compiled first, so a broken set is refused) and make it current."""
    compile_document(document)
    version = (trial.current_criteria_version or 0) + 1
    row = CriteriaVersion(trial_id=trial.trial_id, version=version, document=document)
    session.add(row)
    trial.current_criteria_version = version
    return row


def current_document(session: Session, trial: Trial) -> CriteriaVersion | None:
    if trial.current_criteria_version is None:
        return None
    return session.scalar(
        select(CriteriaVersion).where(
            CriteriaVersion.trial_id == trial.trial_id,
            CriteriaVersion.version == trial.current_criteria_version,
        )
    )


def bundled_document(filename: str) -> dict[str, Any]:
    """A criteria file shipped in services/seed_data."""
    text = resources.files("services.trials.seed_data").joinpath(filename).read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document
