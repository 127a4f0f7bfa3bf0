"""/api/v1/public: what anyone may see of a trial, without a token."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from services.api.context import database
from services.schemas.api import ProblemOut, PublicTrial, TrialPath
from services.trials.queries import public_trial

tag = Tag(name="public", description="Public trial summaries; no token needed")
blueprint = APIBlueprint("public", __name__, url_prefix="/api/v1/public", abp_tags=[tag])


@blueprint.get("/trials/<trial_id>", responses={200: PublicTrial, 404: ProblemOut})
def trial_summary(path: TrialPath) -> Response:
    """Title, conditions, overall status, the sites' cities and how many applied; nothing about anyone."""
    with database().reading() as session:
        return jsonify(public_trial(session, path.trial_id).model_dump(mode="json"))
