"""Screening in batches: one transaction and one compiled criteria set for many applications, each still
decided exactly once, and an application that fails kept from holding back the others."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

import services.applications.screening as screening
from models import Application, ApplicationHistory, Event, ProcessedMessage
from services.applications.screening import FAILED_NOTE, screen_batch
from tests.support.applicants import eligible_applicant
from tests.support.reporting import assert_counted
from tests.support.stack import Stack

POISON_GRADE = 3  # a Wagner grade the criteria accept: only the patched engine below refuses it


def submitted(stack: Stack, *applicants: dict[str, Any]) -> list[tuple[str, str]]:
    """Submit the applicants; each application's (id, submission event id), as the relay hands them."""
    items = []
    for applicant in applicants:
        response = stack.submit(applicant)
        assert response.status_code == 202, response.get_json()
        application_id = response.get_json()["id"]
        with stack.db.sessions() as session:
            event_id = session.scalars(select(Event.id).where(Event.application_id == application_id)).one()
        items.append((application_id, event_id))
    return items


def statuses(stack: Stack, items: list[tuple[str, str]]) -> list[str]:
    with stack.db.sessions() as session:
        return [session.get_one(Application, application_id).status for application_id, _ in items]


def histories(stack: Stack, items: list[tuple[str, str]]) -> list[int]:
    """History rows per application: 1 when submitted, 2 once decided."""
    with stack.db.sessions() as session:
        return [
            int(
                session.scalar(
                    select(func.count()).where(ApplicationHistory.application_id == application_id)
                )
                or 0
            )
            for application_id, _ in items
        ]


@pytest.fixture
def poisoned_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluating an applicant of Wagner grade POISON_GRADE raises, as a bug in a rule would."""
    real = screening.compiled_version

    class Poisoned:
        def __init__(self, compiled: Any) -> None:
            self.compiled = compiled

        def evaluate(self, observations: Any, submitted_on: Any) -> Any:
            if observations.get("wagner_grade") == POISON_GRADE:
                raise ZeroDivisionError("a rule divided by zero")
            return self.compiled.evaluate(observations, submitted_on)

    monkeypatch.setattr(screening, "compiled_version", lambda *a, **k: Poisoned(real(*a, **k)))


def test_a_batch_decides_each_application_once_in_one_transaction(stack: Stack) -> None:
    items = submitted(
        stack,
        eligible_applicant("A"),
        eligible_applicant("B", wagner_grade=5),
        eligible_applicant("C", hiv_positive=None),
        eligible_applicant("D"),
    )
    outcomes = screen_batch(stack.db, items, max_deliveries=3)
    assert {o.status for o in outcomes} == {"decided"}
    assert [o.decision for o in outcomes] == ["eligible", "ineligible", "needs_review", "eligible"]
    assert statuses(stack, items) == ["eligible", "ineligible", "needs_review", "eligible"]
    assert_counted(stack)
    again = screen_batch(stack.db, items, max_deliveries=3)  # the same message, redelivered
    assert {o.status for o in again} == {"duplicate"}
    assert histories(stack, items) == [2, 2, 2, 2]
    with stack.db.sessions() as session:
        processed = session.scalar(select(func.count()).select_from(ProcessedMessage))
        deliveries = [session.get_one(Application, a).screening_deliveries for a, _ in items]
    assert processed == 4 and deliveries == [1, 1, 1, 1]


@pytest.mark.usefixtures("poisoned_engine")
def test_a_poison_application_is_dead_lettered_and_the_rest_of_its_batch_decided(stack: Stack) -> None:
    items = submitted(
        stack,
        eligible_applicant("A"),
        eligible_applicant("POISON", wagner_grade=POISON_GRADE),
        eligible_applicant("C"),
    )
    outcomes = screen_batch(stack.db, items, max_deliveries=3)
    assert [o.status for o in outcomes] == ["decided", "decided", "decided"]
    assert statuses(stack, items) == ["eligible", "needs_review", "eligible"]
    with stack.db.sessions() as session:
        poison = session.get_one(Application, items[1][0])
        assert poison.dead_lettered_at is not None
        reasons = session.scalars(
            select(ApplicationHistory.reason).where(ApplicationHistory.application_id == poison.id)
        ).all()
        deliveries = [session.get_one(Application, a).screening_deliveries for a, _ in items]
    assert FAILED_NOTE.format(cause="ZeroDivisionError raised") in reasons
    assert deliveries == [1, 1, 1]  # set aside inside the batch's transaction, not by a second pass
    assert_counted(stack)


def test_a_batch_delivered_before_is_screened_one_application_at_a_time(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier delivery of the batch died before committing (one of its applications may have killed
    the worker): each is now counted and decided on its own, so a killer is dead-lettered alone."""
    items = submitted(stack, eligible_applicant("A"), eligible_applicant("B"), eligible_applicant("C"))
    with stack.db.transaction() as session:
        session.get_one(Application, items[1][0]).screening_deliveries = 1
    singly: list[str] = []
    one = screening.screen_application

    def counted_single(db: Any, application_id: str, *args: Any, **kwargs: Any) -> Any:
        singly.append(application_id)
        return one(db, application_id, *args, **kwargs)

    monkeypatch.setattr(screening, "screen_application", counted_single)
    assert {o.status for o in screen_batch(stack.db, items, max_deliveries=3)} == {"decided"}
    assert singly == [a for a, _ in items]
    with stack.db.sessions() as session:
        assert [session.get_one(Application, a).screening_deliveries for a, _ in items] == [1, 2, 1]
    assert statuses(stack, items) == ["eligible"] * 3


def test_a_batch_that_fails_to_write_is_decided_one_at_a_time_each_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = submitted(stack, eligible_applicant("A"), eligible_applicant("B"))

    def lost_race(*_: Any, **__: Any) -> Any:
        raise IntegrityError("INSERT", {}, Exception("a concurrent delivery committed first"))

    monkeypatch.setattr(screening, "_decide_batch", lost_race)
    assert [o.status for o in screen_batch(stack.db, items, max_deliveries=3)] == ["decided", "decided"]
    assert statuses(stack, items) == ["eligible", "eligible"]
    assert histories(stack, items) == [2, 2]
    with stack.db.sessions() as session:  # the batch's count of this delivery stands: not counted twice
        assert [session.get_one(Application, a).screening_deliveries for a, _ in items] == [1, 1]


def test_a_transient_failure_is_retried_with_nothing_of_the_batch_kept(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = submitted(stack, eligible_applicant("A"), eligible_applicant("B"))
    real = screening._decide_batch

    def database_away(*_: Any, **__: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("the database restarted"))

    monkeypatch.setattr(screening, "_decide_batch", database_away)
    with pytest.raises(OperationalError):
        screen_batch(stack.db, items, max_deliveries=3)
    assert statuses(stack, items) == ["submitted", "submitted"]
    monkeypatch.setattr(screening, "_decide_batch", real)
    # The task's retry: the deliveries were counted, so it goes one application at a time.
    assert [o.decision for o in screen_batch(stack.db, items, max_deliveries=3)] == ["eligible", "eligible"]
    assert histories(stack, items) == [2, 2]


def test_the_relay_hands_the_screening_worker_batches_of_the_configured_size(stack: Stack) -> None:
    from workers.celery_app import make_celery
    from workers.relay import relay_once

    items = submitted(stack, *(eligible_applicant(f"R{n}") for n in range(7)))
    app = make_celery(
        stack.settings.model_copy(update={"broker_url": "memory://", "screening_batch_size": 3})
    )
    sent: list[tuple[str, Any, str]] = []
    app.send_task = lambda name, args, queue, **_: sent.append((name, args, queue))  # type: ignore[method-assign]
    try:
        assert relay_once(stack.db, app, "batch-relay", 100, max_attempts=3) == 7
    finally:
        app.close()
    assert [(name, queue) for name, _, queue in sent] == [("screening.run_batch", "screening")] * 3
    handed = [tuple(item) for _, [batch], _ in sent for item in batch]
    assert [len(batch) for _, [batch], _ in sent] == [3, 3, 1]
    assert sorted(handed) == sorted(items)
    with stack.db.sessions() as session:
        published = session.scalar(select(func.count()).where(Event.status == "published"))
    assert published == 7
