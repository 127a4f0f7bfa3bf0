"""Criteria documents for amendments: the bundled ones with a rule changed."""

from __future__ import annotations

import copy
from typing import Any

from services.trials.criteria import bundled_document


def amended(wagner_max: int = 3) -> dict[str, Any]:
    """NCT06359912's criteria with I4 admitting Wagner grades up to `wagner_max`."""
    document = copy.deepcopy(bundled_document("NCT06359912.criteria.yaml"))
    i4 = next(c for c in document["criteria"] if c["id"] == "I4")
    i4["rule"] = {"var": "wagner_grade", "le": wagner_max}
    return document
