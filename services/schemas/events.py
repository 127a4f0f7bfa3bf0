"""The event envelope of the feed and of webhook bodies, one model per event type of the catalogue.

Built from services.events.catalogue, so the OpenAPI document lists exactly the declared types, each
with the schema of its `data` as readers get it (a sponsor may miss what only admins read).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from services.events.catalogue import EventPayload, event_types, payloads


class EventEnvelope(BaseModel):
    """`{id, type, occurred_at, trial_id, site_id?, application_id?, data}`: ids and statuses, never
    clinical observations."""

    id: str
    type: str
    occurred_at: datetime
    trial_id: str | None
    site_id: str | None = None
    application_id: str | None = None


def _envelope(payload: type[EventPayload]) -> type[EventEnvelope]:
    named: Any = Literal[payload.event_type]  # a literal made at run time, one per declared type
    return create_model(
        f"{payload.__name__}Event",
        __base__=EventEnvelope,
        __doc__=f"An `{payload.event_type}` event.",
        type=(named, ...),
        data=(payload, ...),
    )


if TYPE_CHECKING:
    EventTypeName = str
    EventOut = EventEnvelope
else:
    EventTypeName = Literal[event_types()]
    EventOut = Annotated[Union[tuple(_envelope(p) for p in payloads())], Field(discriminator="type")]  # noqa: UP007
