"""Screening on SQLite and PostgreSQL: the decision, its event and history, once however often delivered."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

import services.applications.screening as screening_module
from models import Application, ApplicationHistory, Event, ProcessedMessage, Screening
from services.applications.results import read_results
from services.applications.screening import screen_application, screen_batch
from tests.support.applicants import eligible_applicant
from tests.support.stack import Stack


def submit(stack: Stack, **changes: Any) -> tuple[str, str]:
    """(application id, id of its application.submitted event)."""
    application_id = stack.submit(eligible_applicant(**changes)).get_json()["id"]
    with stack.db.sessions() as session:
        event_id = session.scalar(select(Event.id).where(Event.application_id == application_id))
    assert event_id is not None
    return application_id, event_id


def counts(stack: Stack, application_id: str) -> dict[str, int]:
    with stack.db.sessions() as session:

        def count(model: Any, *where: Any) -> int:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0

        return {
            "screenings": count(Screening, Screening.application_id == application_id),
            "screened_events": count(
                Event, Event.application_id == application_id, Event.type == "application.screened"
            ),
            "history": count(ApplicationHistory, ApplicationHistory.application_id == application_id),
        }


def read(stack: Stack, application_id: str) -> dict[str, Any]:
    response = stack.client.get(
        f"/api/v1/applications/{application_id}", headers={"Authorization": f"Bearer {stack.coordinator}"}
    )
    body: dict[str, Any] = response.get_json()
    return body


def test_an_eligible_applicant_is_decided_eligible_with_every_criterion(stack: Stack) -> None:
    application_id, event_id = submit(stack)
    outcome = screen_application(stack.db, application_id, event_id, max_deliveries=5)
    assert (outcome.status, outcome.decision) == ("decided", "eligible")
    body = read(stack, application_id)
    assert body["status"] == body["decision"] == "eligible" and body["criteria_version"] == 1
    assert [c["id"] for c in body["criteria"]][:2] == ["I1", "I2"] and len(body["criteria"]) == 25
    assert {c["outcome"] for c in body["criteria"] if c["id"] != "E18"} <= {"met", "not_met"}
    assert next(c for c in body["criteria"] if c["id"] == "E18")["outcome"] == "judgment"
    assert all(c["text"] for c in body["criteria"])
    assert [h["status"] for h in body["history"]] == ["submitted", "eligible"]
    assert body["decided_at"] is not None
    with stack.db.sessions() as session:
        event = session.scalars(select(Event).where(Event.type == "application.screened")).one()
    assert event.data == {"decision": "eligible", "criteria_version": 1, "criteria": []}


def test_an_ineligible_applicant_names_the_criteria_that_excluded(stack: Stack) -> None:
    application_id, event_id = submit(stack, abi=0.9, rest_pain=False, prior_cell_therapy=True)
    screen_application(stack.db, application_id, event_id, max_deliveries=5)
    body = read(stack, application_id)
    assert body["decision"] == "ineligible"
    outcomes = {c["id"]: c["outcome"] for c in body["criteria"]}
    assert outcomes["I2"] == "not_met" and outcomes["E1"] == "met"
    with stack.db.sessions() as session:
        event = session.scalars(select(Event).where(Event.type == "application.screened")).one()
    assert event.data["criteria"] == ["I2", "E1"]


def test_missing_data_sends_the_application_to_review_listing_what_is_missing(stack: Stack) -> None:
    applicant = eligible_applicant()
    del applicant["iliac_stenosis_pct"], applicant["hiv_positive"]
    application_id = stack.submit(applicant).get_json()["id"]
    with stack.db.sessions() as session:
        event_id = session.scalar(select(Event.id).where(Event.application_id == application_id))
    screen_application(stack.db, application_id, str(event_id), max_deliveries=5)
    body = read(stack, application_id)
    assert body["decision"] == "needs_review"
    unknown = {c["id"]: c["missing"] for c in body["criteria"] if c["outcome"] == "unknown"}
    assert unknown == {"E3": ["iliac_stenosis_pct"], "E11": ["hiv_positive"]}


def test_a_redelivered_message_changes_nothing(stack: Stack) -> None:
    application_id, event_id = submit(stack)
    assert screen_application(stack.db, application_id, event_id, 5).status == "decided"
    assert screen_application(stack.db, application_id, event_id, 5).status == "duplicate"
    assert screen_application(stack.db, application_id, "evt_republished", 5).status == "duplicate"
    assert counts(stack, application_id) == {"screenings": 1, "screened_events": 1, "history": 2}


def test_concurrent_deliveries_decide_exactly_once(stack: Stack) -> None:
    application_id, event_id = submit(stack)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def deliver(n: int) -> None:
        barrier.wait()
        outcomes.append(
            screen_application(stack.db, application_id, event_id if n % 2 else f"evt_{n}", 50).status
        )

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["decided"] + ["duplicate"] * 5
    assert counts(stack, application_id) == {"screenings": 1, "screened_events": 1, "history": 2}
    with stack.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ProcessedMessage)) == 1
        [screening] = session.scalars(select(Screening))
        assert len(read_results(screening.results)) == 25  # one value, a result per criterion


def test_a_message_delivered_too_often_goes_to_review_instead_of_looping(stack: Stack) -> None:
    application_id, event_id = submit(stack)
    with stack.db.transaction() as session:
        session.get_one(Application, application_id).screening_deliveries = 5
    outcome = screen_application(stack.db, application_id, event_id, max_deliveries=5)
    assert (outcome.status, outcome.decision) == ("decided", "needs_review")
    body = read(stack, application_id)
    assert body["status"] == "needs_review" and "by hand" in body["history"][-1]["reason"]


def test_a_delivery_that_meets_a_database_fault_is_given_back_and_never_brings_review_nearer(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database away is the task's to retry: however often it happens, the application is still
    decided, never dead-lettered for deliveries that lived to report the fault (one batch, one alone)."""
    singles = [submit(stack, screening_id=f"FAULT-{n}") for n in range(1)]
    batch = [submit(stack, screening_id=f"FAULT-B{n}") for n in range(3)]
    real = screening_module._decide_in_batch
    faults = {"left": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if faults["left"] > 0:
            faults["left"] -= 1
            raise OperationalError(
                "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
            )
        return real(*args, **kwargs)

    def flaky_single(session: Any, *args: Any) -> Any:
        if faults["left"] > 0:
            faults["left"] -= 1
            raise OperationalError(
                "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
            )
        return real_single(session, *args)

    real_single = screening_module._decide
    monkeypatch.setattr(screening_module, "_decide_in_batch", flaky)
    monkeypatch.setattr(screening_module, "_decide", flaky_single)
    for run in (
        lambda: screen_application(stack.db, *singles[0], 2),
        lambda: screen_batch(stack.db, batch, 2),
    ):
        for _ in range(4):  # more faults than the limit of deliveries (2)
            faults["left"] = 1
            with pytest.raises(OperationalError):
                run()
        run()
    with stack.db.sessions() as session:
        rows = session.execute(
            select(Application.status, Application.screening_deliveries, Application.dead_lettered_at).where(
                Application.id.in_([a for a, _ in singles + batch])
            )
        ).all()
    assert rows == [("eligible", 1, None)] * 4
