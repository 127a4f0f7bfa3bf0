"""/api/v1/events: the event feed, oldest first, each event exactly once whatever the page size."""

from __future__ import annotations

from flask import Response, jsonify
from flask_openapi3 import APIBlueprint, Tag

from models import Role
from services.api.context import caller, cursor_key, database
from services.reporting.feed import read_feed
from services.schemas.api import EventPage, EventQuery, ProblemOut

tag = Tag(name="events", description="Every state change, as the event feed")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
blueprint = APIBlueprint(
    "events", __name__, url_prefix="/api/v1/events", abp_tags=[tag], abp_security=SECURITY
)


@blueprint.get(
    "", responses={200: EventPage, 400: ProblemOut, 401: ProblemOut, 403: ProblemOut, 410: ProblemOut}
)
def feed(query: EventQuery) -> Response:
    """The events of the caller's trials (admins: all), oldest first.

    Keep `next_cursor` and pass it as `after`: a consumer reading from the start sees every event once,
    in a fixed order, even while events are being written. Events carry ids and statuses only; the
    criterion ids that decided an applicant's screening (`application.screened`) reach admins alone.
    Published events are kept ACCRUAL_EVENT_RETENTION_DAYS (30 by default): a cursor from before the
    last purge gets 410 `cursor-expired`; read again without `after`, from the oldest event kept.
    """
    who = caller(Role.SPONSOR, Role.ADMIN)
    with database().reading() as session:
        items, next_cursor = read_feed(session, who, query.after, query.limit, cursor_key())
    return jsonify({"items": items, "next_cursor": next_cursor})
