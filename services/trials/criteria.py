"""Criteria sets: stored versions, compiled once per version and kept compiled for the process, and
amendments (a new version, announced so open applications are screened again)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import CriteriaVersion, Trial
from services.eligibility import CompiledCriteria, CriteriaError, compile_criteria
from services.errors import InvalidCriteria
from services.events.catalogue import TrialCriteriaChanged
from services.events.outbox import add_event
from services.schemas.vocabulary import VARIABLES

__all__ = [
    "Amendment",
    "CriteriaError",
    "add_version",
    "amend_criteria",
    "bundled_document",
    "compile_document",
    "compiled_version",
]


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


@dataclass(frozen=True)
class Amendment:
    version: int
    created: bool


def amend_criteria(session: Session, trial: Trial, document: dict[str, Any], actor: str) -> Amendment:
    """A new immutable criteria version, and `trial.criteria_changed` so open applications are re-screened.

    Sending the current document again creates nothing (a safe retry). The trial row is locked first,
    so two amendments at once take consecutive versions instead of colliding.
    """
    session.refresh(trial, with_for_update=True)
    current = current_document(session, trial)
    if current is not None and current.document == document:
        return Amendment(current.version, created=False)
    previous = trial.current_criteria_version
    try:
        row = add_version(session, trial, document)
    except CriteriaError as exc:
        raise InvalidCriteria(str(exc)) from None
    changed = TrialCriteriaChanged(version=row.version, previous_version=previous, by=actor)
    add_event(session, changed, trial_id=trial.trial_id)
    return Amendment(row.version, created=True)


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
    """A criteria file shipped in services/trials/seed_data."""
    text = resources.files("services.trials.seed_data").joinpath(filename).read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document
