"""Registry records (ClinicalTrials.gov v2 JSON) to import: the bundled ones and altered copies."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any


def registry_record(name: str = "NCT06359912.json") -> dict[str, Any]:
    """A bundled registry record, as the seed reads it."""
    loaded: dict[str, Any] = json.loads(
        resources.files("services.trials.seed_data").joinpath(name).read_text()
    )
    return loaded


def new_study(nct_id: str = "NCT09999999") -> dict[str, Any]:
    """A trial the registry does not hold yet: NCT06359912's record renamed, with two Korean sites."""
    study = copy.deepcopy(registry_record())
    study["protocolSection"]["identificationModule"]["nctId"] = nct_id
    study["protocolSection"]["identificationModule"]["briefTitle"] = "A new CLI trial"
    study["protocolSection"]["contactsLocationsModule"]["locations"] = [
        {"facility": "Hospital A", "city": "Seoul", "country": "South Korea", "status": "RECRUITING"},
        {"facility": "Hospital B", "city": "Busan", "country": "South Korea", "status": "NOT_YET_RECRUITING"},
    ]
    return study
