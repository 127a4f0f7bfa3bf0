"""/api/v1/vocabulary: the applicant vocabulary, as docs/observations.md publishes it."""

from __future__ import annotations

import dataclasses

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from services.api.context import caller
from services.schemas.api import ProblemOut, VocabularyOut
from services.schemas.vocabulary_doc import vocabulary_rows

tag = Tag(name="vocabulary", description="The observations an applicant may carry: types, units, ranges")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
blueprint = APIBlueprint(
    "vocabulary", __name__, url_prefix="/api/v1/vocabulary", abp_tags=[tag], abp_security=SECURITY
)


@blueprint.get("", responses={200: VocabularyOut, 401: ProblemOut})
def vocabulary() -> Response:
    """Every variable: its type, canonical unit, the units accepted as `{"value", "unit"}`, its range or
    values, and what it means (any role)."""
    caller()
    rows = [dataclasses.asdict(row) for row in vocabulary_rows()]
    return jsonify(VocabularyOut.model_validate({"variables": rows}).model_dump(mode="json"))
