"""/api/v1/worklist: the needs_review applications a coordinator can settle, most valuable first."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from models import Role
from services.api.context import caller, database
from services.applications.worklist import worklist
from services.schemas.api import ProblemOut, Worklist, WorklistQuery

tag = Tag(name="worklist", description="What a coordinator should do next")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
blueprint = APIBlueprint(
    "worklist", __name__, url_prefix="/api/v1/worklist", abp_tags=[tag], abp_security=SECURITY
)


@blueprint.get("", responses={200: Worklist, 401: ProblemOut, 403: ProblemOut, 422: ProblemOut})
def work(query: WorklistQuery) -> Response:
    """The caller's needs_review applications, each with the missing observations that would settle it
    (the criteria each settles whatever its value, and whether it alone decides), most valuable first:
    one observation that decides, few places left, more criteria settled, an observation missing from
    several applications, then the oldest. Coordinators see their sites; admins every site."""
    who = caller(Role.COORDINATOR, Role.ADMIN)
    with database().reading() as session:
        items = worklist(session, who, query)
    return jsonify(Worklist(items=items).model_dump(mode="json"))
