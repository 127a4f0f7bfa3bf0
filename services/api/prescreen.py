"""/api/v1/prescreen: one applicant against every recruiting trial, synchronously, storing nothing."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from models import Role
from services.api.context import caller, database
from services.applications.prescreening import prescreen
from services.schemas.api import PrescreenRequest, PrescreenResponse, ProblemOut

tag = Tag(name="prescreen", description="Which trials could this applicant join, and what stands in the way")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
blueprint = APIBlueprint(
    "prescreen", __name__, url_prefix="/api/v1/prescreen", abp_tags=[tag], abp_security=SECURITY
)


@blueprint.post("", responses={200: PrescreenResponse, 401: ProblemOut, 403: ProblemOut, 422: ProblemOut})
def run(body: PrescreenRequest) -> Response:
    """Screen one applicant against every trial recruiting at the caller's sites, or the trials listed.

    Eligible trials come first; for the others each result names the criteria that stand in the way and
    the observations that are missing. Nothing clinical is stored or logged.
    """
    who = caller(Role.COORDINATOR)
    with database().reading() as session:
        results = prescreen(session, who, body.applicant.observations(), body.trial_ids)
    return jsonify(PrescreenResponse(results=results).model_dump(mode="json"))
