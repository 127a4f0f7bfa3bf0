"""The event catalogue: every type declared once with the model of its data, stored exactly as the
emitters wrote it before the catalogue, a wrong payload refused, and every consumer routed by it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import queues
from models import Event
from services.applications.transitions import EVENTS, Action
from services.events.catalogue import (
    ApplicationEvent,
    ApplicationScreened,
    ApplicationSubmitted,
    ApplicationUpdated,
    EventPayload,
    SiteStatusChanged,
    TrialCriteriaChanged,
    TrialStatusChanged,
    TrialTargetReached,
    UnknownEventType,
    WebhookDisabled,
    event_types,
    payload_model,
    sponsor_sees,
)
from services.events.outbox import SCREENING_REQUESTS, add_event
from services.reporting.feed import data_for
from workers.relay import CONSUMERS, SCREEN, WEBHOOKS, Batched, Task

ROOT = Path(__file__).resolve().parents[2]
# A quoted name of an event type, as code that emits, routes or filters events spells it.
EVENT_NAME = re.compile(
    r"""["']((?:application|trial|site|webhook|allocation|dose_escalation)\.[a-z_]+)["']"""
)
NO_SESSION: Any = None  # add_event refuses these payloads before it touches the session


def test_the_catalogue_declares_the_contracts_names_in_order() -> None:
    assert event_types() == (
        "application.submitted",
        "application.updated",
        "application.screened",
        "application.reviewed",
        "application.enrolled",
        "application.withdrawn",
        "trial.status_changed",
        "trial.target_reached",
        "trial.criteria_changed",
        "site.status_changed",
        "webhook.disabled",
        "dose_escalation.decided",
        "application.allocated",
        "allocation.unblinded",
        "webhook.delivery_failed",
    )
    assert [payload_model(name).event_type for name in event_types()] == list(event_types())
    with pytest.raises(UnknownEventType):
        payload_model("application.decided")


def test_every_event_type_the_code_or_the_contract_names_is_declared() -> None:
    named: dict[str, set[str]] = {}
    for package in ("config", "models", "services", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            for name in EVENT_NAME.findall(path.read_text()):
                named.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert set(named) - set(event_types()) == set(), named
    assert len(named) >= len(event_types())  # the scan sees the catalogue's own declarations
    contract = (ROOT / "docs" / "API.md").read_text()
    section = contract.split("## Events and notifications", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", section))
    assert len(listed) >= 9 and listed <= set(event_types())


@pytest.mark.parametrize(
    ("payload", "stored"),
    [
        (ApplicationSubmitted(), {}),
        (ApplicationUpdated(reason="observations_corrected"), {"reason": "observations_corrected"}),
        (
            ApplicationScreened(decision="needs_review", criteria_version=None, criteria=[]),
            {"decision": "needs_review", "criteria_version": None, "criteria": []},
        ),
        (
            TrialStatusChanged(from_="RECRUITING", to="SUSPENDED", reason="changed_by_admin", by="tok_1"),
            {"from": "RECRUITING", "to": "SUSPENDED", "reason": "changed_by_admin", "by": "tok_1"},
        ),
        (
            TrialStatusChanged(
                from_="RECRUITING", to="ACTIVE_NOT_RECRUITING", reason="target_reached", by=None
            ),
            {"from": "RECRUITING", "to": "ACTIVE_NOT_RECRUITING", "reason": "target_reached"},
        ),
        (
            TrialStatusChanged(from_="RECRUITING", to="COMPLETED", source="registry"),
            {"from": "RECRUITING", "to": "COMPLETED", "source": "registry"},
        ),
        (TrialTargetReached(enrolled=12), {"enrolled": 12}),
        (
            TrialCriteriaChanged(version=2, previous_version=None, by="tok_1"),
            {"version": 2, "previous_version": None, "by": "tok_1"},
        ),
        (
            SiteStatusChanged(from_=None, to="RECRUITING", reason="site_added", by="tok_1"),
            {"from": None, "to": "RECRUITING", "reason": "site_added", "by": "tok_1"},
        ),
        (
            SiteStatusChanged(
                from_="RECRUITING", to="ACTIVE_NOT_RECRUITING", reason="target_reached", enrolled=3
            ),
            {"from": "RECRUITING", "to": "ACTIVE_NOT_RECRUITING", "reason": "target_reached", "enrolled": 3},
        ),
        (WebhookDisabled(webhook_id="whk_1", reason="gone"), {"webhook_id": "whk_1", "reason": "gone"}),
    ],
    ids=lambda value: getattr(value, "event_type", ""),
)
def test_a_payload_is_stored_as_its_emitter_always_wrote_it(
    payload: EventPayload, stored: dict[str, Any]
) -> None:
    """The dicts each emitter built before the catalogue: same keys, in the same order, same values."""
    assert list(payload.stored().items()) == list(stored.items())
    assert type(payload).model_validate(stored).stored() == stored


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (ApplicationScreened, {"decision": "maybe", "criteria_version": 1, "criteria": []}),
        (ApplicationScreened, {"decision": "eligible", "criteria_version": 1}),  # no criteria
        (ApplicationUpdated, {"reason": "observations_corrected", "note": "hemoglobin 9"}),  # extra field
        (TrialTargetReached, {"enrolled": "twelve"}),
        (TrialCriteriaChanged, {"version": 2, "previous_version": 1}),  # no `by`
        (SiteStatusChanged, {"to": "RECRUITING", "reason": "site_added"}),  # no `from`
        (EVENTS[Action.ENROLL], {"status": "eligible"}),  # enrolment announces `enrolled`
        (EVENTS[Action.REVIEW], {"status": "needs_review"}),  # a review decides
    ],
)
def test_a_wrong_payload_is_refused(model: type[EventPayload], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)


def test_add_event_writes_declared_payloads_only_each_about_what_it_says() -> None:
    with pytest.raises(TypeError):
        add_event(NO_SESSION, "application.submitted", trial_id="T", application_id="app_1")
    with pytest.raises(TypeError):
        add_event(NO_SESSION, ApplicationEvent(), trial_id="T", application_id="app_1")  # declares no type
    with pytest.raises(ValueError, match="name an application"):
        add_event(NO_SESSION, ApplicationSubmitted(), trial_id="T")  # the feed would show it whole
    with pytest.raises(ValueError, match="name an application"):
        add_event(NO_SESSION, TrialTargetReached(enrolled=3), trial_id="T", application_id="app_1")


def test_a_type_is_declared_once_and_what_sponsors_see_are_its_own_fields() -> None:
    with pytest.raises(TypeError, match="declared twice"):

        class Again(ApplicationEvent):
            event_type = "application.submitted"

    with pytest.raises(TypeError, match="sponsor_sees"):

        class Leaky(ApplicationEvent):
            event_type = "application.flagged"
            sponsor_sees = frozenset({"note"})

    assert "application.flagged" not in event_types()
    assert payload_model("application.submitted") is ApplicationSubmitted


def test_sponsors_read_of_an_applicants_event_only_what_its_type_lists() -> None:
    assert sponsor_sees("application.screened") == {"decision", "criteria_version"}
    assert sponsor_sees("application.submitted") == frozenset()
    assert sponsor_sees("application.flagged") == frozenset()  # a type this version does not know
    screened = Event(
        type="application.screened",
        application_id="app_1",
        data={"decision": "ineligible", "criteria_version": 2, "criteria": ["E14"]},
    )
    assert data_for(screened, for_admin=False) == {"decision": "ineligible", "criteria_version": 2}
    assert data_for(screened, for_admin=True) == screened.data
    changed = Event(
        type="trial.status_changed", application_id=None, data={"from": "RECRUITING", "to": "SUSPENDED"}
    )
    assert data_for(changed, for_admin=False) == changed.data


def test_the_relay_routes_every_declared_type_and_fans_each_out_to_webhooks() -> None:
    assert list(CONSUMERS) == list(event_types())
    assert all(consumers[-1] is WEBHOOKS for consumers in CONSUMERS.values())
    tasks = [c for consumers in CONSUMERS.values() for c in consumers if isinstance(c, Task | Batched)]
    assert {task.queue for task in tasks} <= set(queues.ALL)
    assert {name for name, consumers in CONSUMERS.items() if SCREEN in consumers} == set(SCREENING_REQUESTS)
