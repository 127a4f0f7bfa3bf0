"""Every event type, declared once: its name, the model of its `data`, and what a sponsor may read of it.

A payload class that sets `event_type` declares that type. The outbox writes nothing else (add_event
takes a payload, whose class names the type), the feed and webhooks filter `data` by `sponsor_sees`, the
relay routes by the names, webhook subscriptions may name any of them, and the OpenAPI document lists
them with their payloads. Names and fields are the public contract (docs/API.md): a type or a field may
be added, never renamed or removed.

Events carry ids, statuses and versions, never clinical observations.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field


class UnknownEventType(LookupError):
    """A name no payload class declares."""


_DECLARED: dict[str, type[EventPayload]] = {}


def _as_published(schema: dict[str, Any], model: type[Any]) -> None:
    """The JSON schema of `data` as readers get it: a field left out while None is never null, and of
    an event about one applicant a sponsor may miss every field its type does not list for sponsors."""
    properties = schema.get("properties", {})
    for alias, field in _aliased_fields(model):
        if not field.is_required():
            described = properties[alias]
            described.pop("default", None)
            kinds = [kind for kind in described.pop("anyOf", []) if kind != {"type": "null"}]
            described.update(kinds[0] if len(kinds) == 1 else {"anyOf": kinds} if kinds else {})
    if model.sponsor_sees is not None and "required" in schema:
        schema["required"] = [name for name in schema["required"] if name in model.sponsor_sees]


class EventPayload(BaseModel):
    """The `data` of one event type.

    A field with a default of None is left out of the stored data while None, as the emitters always
    did; a required field that may be None (a new site's `from`) is written as null.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        json_schema_extra=_as_published,
    )

    event_type: ClassVar[str]
    # What a sponsor may read of an event about one applicant (contract v1.1): see ApplicationEvent.
    sponsor_sees: ClassVar[frozenset[str] | None] = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__dict__.get("event_type")
        if name is None:  # an intermediate class, declaring no type
            return
        if name in _DECLARED:
            raise TypeError(f"event type {name} is declared twice, by {_DECLARED[name].__name__} too")
        fields = set(field_names(cls))
        if cls.sponsor_sees is not None and not cls.sponsor_sees <= fields:
            raise TypeError(f"{cls.__name__}.sponsor_sees names fields it does not have")
        _DECLARED[name] = cls

    def stored(self) -> dict[str, Any]:
        """The JSON object kept in the event's `data` and shown by the feed and webhooks."""
        optional = {alias for alias, field in _aliased_fields(type(self)) if not field.is_required()}
        dumped = self.model_dump(mode="json")
        return {key: value for key, value in dumped.items() if value is not None or key not in optional}


def _aliased_fields(model: type[EventPayload]) -> list[tuple[str, Any]]:
    return [(field.serialization_alias or name, field) for name, field in model.model_fields.items()]


def field_names(model: type[EventPayload]) -> list[str]:
    """The keys the payload may have in its JSON, in order."""
    return [alias for alias, _ in _aliased_fields(model)]


def _from() -> Any:
    """`from`, a Python keyword: `from_` in code, `from` in the JSON."""
    return Field(validation_alias="from", serialization_alias="from")


# --- about one applicant ---------------------------------------------------------------------------


class ApplicationEvent(EventPayload):
    """An event about one application (it names its `application_id`).

    Which criteria decided one applicant's screening are clinical facts about that applicant (exclusion
    "immunodeficiency" says what they have), so a sponsor reads only the fields in `sponsor_sees`, and
    an admin all of them. An allow-list: a field added later reaches sponsors only once listed.
    """

    sponsor_sees: ClassVar[frozenset[str] | None] = frozenset()


class ApplicationSubmitted(ApplicationEvent):
    """Stored as `submitted`; screening follows."""

    event_type = "application.submitted"


class ApplicationUpdated(ApplicationEvent):
    """Back to `submitted` for a new screening round."""

    event_type = "application.updated"
    sponsor_sees = frozenset({"reason"})

    reason: Literal["observations_corrected", "screening_retried"]


class ApplicationScreened(ApplicationEvent):
    """Screening decided (or set the application aside for review without evaluating it)."""

    event_type = "application.screened"
    sponsor_sees = frozenset({"decision", "criteria_version"})

    decision: Literal["eligible", "ineligible", "needs_review"]
    criteria_version: int | None
    criteria: list[str] = Field(description="The ids of the criteria that decided it; admins only")


class ApplicationReviewed(ApplicationEvent):
    """An investigator decided what screening left open."""

    event_type = "application.reviewed"
    sponsor_sees = frozenset({"status"})

    status: Literal["eligible", "ineligible"]


class ApplicationEnrolled(ApplicationEvent):
    event_type = "application.enrolled"
    sponsor_sees = frozenset({"status"})

    status: Literal["enrolled"]


class ApplicationWithdrawn(ApplicationEvent):
    event_type = "application.withdrawn"
    sponsor_sees = frozenset({"status"})

    status: Literal["withdrawn"]


# --- trials, sites and webhooks: every reader of the trial sees them whole -------------------------


class TrialStatusChanged(EventPayload):
    """A trial's overall status changed: by an admin or a rule (`reason`), or by the registry (`source`)."""

    event_type = "trial.status_changed"

    from_: str | None = _from()
    to: str
    reason: str | None = None
    source: Literal["registry"] | None = None
    by: str | None = Field(default=None, description="The token that asked for it, if a person did")


class TrialTargetReached(EventPayload):
    event_type = "trial.target_reached"

    enrolled: int


class TrialCriteriaChanged(EventPayload):
    """A new criteria version: the trial's open applications are screened again."""

    event_type = "trial.criteria_changed"

    version: int
    previous_version: int | None
    by: str


class SiteStatusChanged(EventPayload):
    """A site's status changed; `from` is null for a site just added."""

    event_type = "site.status_changed"

    from_: str | None = _from()
    to: str
    reason: str
    enrolled: int | None = Field(default=None, description="The enrolled count of a site at its target")
    by: str | None = Field(default=None, description="The token that asked for it, if a person did")


class WebhookDisabled(EventPayload):
    event_type = "webhook.disabled"

    webhook_id: str
    reason: str


class DoseEscalationDecided(EventPayload):
    """The safety review confirmed the 3+3 recommendation: a level opened, expanded, or escalation stopped."""

    event_type = "dose_escalation.decided"

    action: Literal["escalate", "expand", "stop"]
    level: int | None = Field(
        description="The level opened or expanded, or the MTD when stopping (null: none)"
    )
    reason: str
    by: str


class ApplicationAllocated(ApplicationEvent):
    """A participant of a randomised trial was allocated at enrolment: the sequence number only, never
    the arm (anyone reading the feed or a webhook would otherwise be unblinded)."""

    event_type = "application.allocated"
    sponsor_sees = frozenset({"sequence"})

    sequence: int


class AllocationUnblinded(ApplicationEvent):
    """An admin broke the code of one participant in an emergency; the reason is in the audit trail."""

    event_type = "allocation.unblinded"
    sponsor_sees = frozenset({"sequence"})

    sequence: int
    by: str


class WebhookDeliveryFailed(EventPayload):
    """A delivery spent its retry schedule (or its endpoint answered 410): it is `failed`, the dead
    letter, until someone redelivers it. The subscription's owner is told by e-mail when its token has
    an address, and admins read it in the feed. A failed delivery of this notice raises no notice in
    turn, so endpoints failing together cannot keep one another busy."""

    event_type = "webhook.delivery_failed"

    webhook_id: str
    delivery_id: str
    event_id: str
    attempts: int
    last_status_code: int | None = Field(description="The last attempt's HTTP status, null if none came")


# --- the catalogue ---------------------------------------------------------------------------------


def event_types() -> tuple[str, ...]:
    """Every declared type, in the order declared."""
    return tuple(_DECLARED)


def payloads() -> tuple[type[EventPayload], ...]:
    return tuple(_DECLARED.values())


def payload_model(event_type: str) -> type[EventPayload]:
    """The payload class of `event_type`; UnknownEventType if none declares it."""
    try:
        return _DECLARED[event_type]
    except KeyError:
        raise UnknownEventType(f"no event type {event_type!r} is declared") from None


def sponsor_sees(event_type: str) -> frozenset[str]:
    """What a sponsor may read of an event of this type about one applicant: nothing for a type that
    lists nothing or that the catalogue does not know."""
    declared = _DECLARED.get(event_type)
    allowed = declared.sponsor_sees if declared is not None else None
    return allowed if allowed is not None else frozenset()
