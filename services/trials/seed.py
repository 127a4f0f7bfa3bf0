"""`accrual seed`: load the bundled trials, their criteria and sites. Idempotent."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from sqlalchemy.orm import Session

from models import DoseEscalation, RandomisationScheme, Trial
from services.randomisation.schemes import configure as configure_randomisation
from services.schemas.api import DoseEscalationIn
from services.schemas.randomisation import RandomisationIn
from services.trials.criteria import add_version, bundled_document, current_document
from services.trials.dose_escalation import configure
from services.trials.registry_import import import_record

# (registry record, criteria file) of each bundled trial, in services/trials/seed_data.
BUNDLED_TRIALS: tuple[tuple[str, str], ...] = (
    ("NCT06359912.json", "NCT06359912.criteria.yaml"),
    ("NCT03239535.json", "NCT03239535.criteria.yaml"),
    ("NL003-CLI-III-2.json", "NL003-CLI-III-2.criteria.yaml"),
    ("ADMSCC-CLI-P1-2A.json", "ADMSCC-CLI-P1-2A.criteria.yaml"),
)


# Trials bundled with a dose-escalation design (services/trials/seed_data/<trial>.dose-escalation.yaml).
DOSE_ESCALATIONS: tuple[str, ...] = ("ADMSCC-CLI-P1-2A",)
# Trials bundled with a randomisation scheme (services/trials/seed_data/<trial>.randomisation.yaml); each
# gets its own seed, and its commitment, when first seeded.
RANDOMISED: tuple[str, ...] = ("NCT06359912", "NCT03239535")


def _record(filename: str) -> dict[str, Any]:
    text = resources.files("services.trials.seed_data").joinpath(filename).read_text(encoding="utf-8")
    record: dict[str, Any] = json.loads(text)
    return record


def ensure_criteria(session: Session, trial: Trial, document: dict[str, Any]) -> bool:
    """Add the document as a new version unless it is already the current one."""
    current = current_document(session, trial)
    if current is not None and current.document == document:
        return False
    add_version(session, trial, document)
    return True


def seed(session: Session) -> list[str]:
    """Load every bundled trial; returns their ids."""
    loaded = []
    for record_file, criteria_file in BUNDLED_TRIALS:
        record = _record(record_file)
        # An existing trial keeps its state: its status and targets may have moved on since seeding.
        trial, _ = import_record(session, record, replace=False)
        ensure_criteria(session, trial, bundled_document(criteria_file))
        if trial.trial_id in DOSE_ESCALATIONS and session.get(DoseEscalation, trial.trial_id) is None:
            design = bundled_document(f"{trial.trial_id}.dose-escalation.yaml")
            configure(session, trial, DoseEscalationIn.model_validate(design))
        if trial.trial_id in RANDOMISED and session.get(RandomisationScheme, trial.trial_id) is None:
            scheme = bundled_document(f"{trial.trial_id}.randomisation.yaml")
            configure_randomisation(session, "seed", trial, RandomisationIn.model_validate(scheme))
        loaded.append(trial.trial_id)
    return loaded
