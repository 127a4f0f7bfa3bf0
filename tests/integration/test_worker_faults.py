"""Workers killed in the middle of screening, and tasks delivered twice: every application still
reaches exactly one decision, on SQLite with the embedded broker and on PostgreSQL with Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from models import Application, ApplicationHistory, Event, Screening
from services.applications.dead_letters import RETRY_REASON
from services.applications.results import read_results
from services.applications.screening import POISON_NOTE
from tests.support.applicants import eligible_applicant
from tests.support.database import status_of
from tests.support.pipeline import assert_decided_exactly_once, decided, submit_many
from tests.support.processes import Processes
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def decided_count(stack: Stack, ids: list[str]) -> int:
    with stack.db.sessions() as session:
        query = (
            select(func.count())
            .select_from(Application)
            .where(Application.id.in_(ids), Application.decided_at.is_not(None))
        )
        return int(session.scalar(query) or 0)


def test_a_worker_killed_while_screening_loses_no_application_and_decides_none_twice(
    backend: Stack, processes: Processes
) -> None:
    environment = {**backend.env(), "ACCRUAL_SWEEP_AFTER_SECONDS": "5", "ACCRUAL_SWEEP_INTERVAL_SECONDS": "1"}
    worker = processes.start("worker", ["worker"], environment)
    processes.start("beat", ["beat"], environment)
    ids = submit_many(backend, 40, "KILL")
    wait_until(lambda: decided_count(backend, ids) >= 3, timeout=60, what="the first decisions")
    os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool, whatever they were doing
    worker.wait(10)
    processes.start("worker-2", ["worker"], environment)
    wait_until(
        lambda: decided(backend, ids),
        timeout=120,
        what="every decision: " + processes.log("worker-2")[-1500:],
    )
    assert_decided_exactly_once(backend, ids)


# kombu's SQLAlchemy transport declares its models with a loader option SQLAlchemy 2.1 deprecates.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:sqlalchemy.exc.SADeprecationWarning")
def test_a_task_published_twice_by_hand_decides_once(backend: Stack, processes: Processes) -> None:
    from workers.celery_app import make_celery

    processes.start("worker", ["worker"], backend.env())
    [application] = submit_many(backend, 1, "TWICE")
    with backend.db.sessions() as session:
        event_id = session.scalars(
            select(Event.id).where(Event.application_id == application, Event.type == "application.submitted")
        ).one()
    app = make_celery(backend.settings)
    for _ in range(2):  # the relay is not running: these are the only two deliveries
        app.send_task("screening.run", args=[application, event_id], queue="screening")
    wait_until(lambda: decided(backend, [application]), timeout=60, what="the decision")
    assert_decided_exactly_once(backend, [application])
    with backend.db.sessions() as session:
        deliveries = session.get_one(Application, application).screening_deliveries
    assert deliveries >= 1


def accrual(environment: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_application_that_kills_its_worker_three_times_is_dead_lettered_and_can_be_retried(
    backend: Stack, processes: Processes
) -> None:
    # Celery requeues the task of a killed pool process once, then drops it (a redelivered message is
    # not requeued again); the sweep re-publishes it, so each death is followed by another delivery.
    environment = {
        **backend.env(),
        "ACCRUAL_SCREENING_MAX_DELIVERIES": "3",
        "ACCRUAL_SWEEP_AFTER_SECONDS": "2",
        "ACCRUAL_SWEEP_INTERVAL_SECONDS": "1",
    }
    processes.start("beat", ["beat"], environment)
    poisoned = processes.start("poison-worker", ["worker"], environment, module="tests.support.poison_worker")
    [application] = submit_many(backend, 1, "POISON")
    wait_until(
        lambda: status_of(backend, application) == "needs_review",
        timeout=120,
        what="the dead letter: " + processes.log("poison-worker")[-1500:],
    )
    with backend.db.sessions() as session:
        row = session.get_one(Application, application)
        assert row.screening_deliveries >= 4  # three deaths, then the delivery that gave up
        assert row.dead_lettered_at is not None and row.decision == "needs_review"
        [screening] = session.scalars(select(Screening).where(Screening.application_id == application)).all()
        assert screening.decision == "needs_review"
        assert read_results(screening.results) == []  # never evaluated: evaluating is what killed the workers
        reasons = session.scalars(
            select(ApplicationHistory.reason).where(ApplicationHistory.application_id == application)
        ).all()
        # Two copies (a requeue and a sweep) can be counted at once: the one that gave up wrote the note.
        notes = {POISON_NOTE.format(n=n) for n in range(3, row.screening_deliveries)}
        assert len(notes & set(reasons)) == 1
    assert "accrual_screening_dead_letters 1.0" in backend.client.get("/metrics").get_data(as_text=True)
    listed = accrual(environment, "screening", "dead-letters")
    assert listed.returncode == 0 and application in listed.stdout

    # The cause is fixed (here: a worker without the fault); the operator sends it back to screening.
    poisoned.terminate()
    try:
        poisoned.wait(30)
    except subprocess.TimeoutExpired:  # a loaded machine can outlast the warm shutdown: stop it for good
        poisoned.kill()
        poisoned.wait(30)
    processes.start("worker", ["worker"], environment)
    retried = accrual(environment, "screening", "retry", application)
    assert retried.returncode == 0, retried.stderr
    wait_until(
        lambda: status_of(backend, application) == "eligible",
        timeout=90,
        what="the retried screening: " + processes.log("worker")[-1500:],
    )
    with backend.db.sessions() as session:
        row = session.get_one(Application, application)
        assert row.dead_lettered_at is None and row.screening_round == 2
        decisions = session.scalars(
            select(Screening.decision)
            .where(Screening.application_id == application)
            .order_by(Screening.round)
        ).all()
        assert decisions == ["needs_review", "eligible"]
        screened = session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.application_id == application, Event.type == "application.screened")
        )
        assert screened == 2  # one per screening round: the dead letter, then the retry
        assert (
            RETRY_REASON
            in session.scalars(
                select(ApplicationHistory.reason).where(ApplicationHistory.application_id == application)
            ).all()
        )
    assert "accrual_screening_dead_letters 0.0" in backend.client.get("/metrics").get_data(as_text=True)
    again = accrual(environment, "screening", "retry", application)
    assert again.returncode == 2 and "nothing was retried" in again.stderr


def test_an_application_that_kills_its_worker_is_dead_lettered_alone_and_its_batch_decided(
    backend: Stack, processes: Processes
) -> None:
    """Six applications in one batch, one of which kills the worker evaluating it: the batch is screened
    one application at a time after the first death, so the others are decided and only it is set aside."""
    environment = {
        **backend.env(),
        "ACCRUAL_SCREENING_MAX_DELIVERIES": "2",
        "ACCRUAL_SWEEP_AFTER_SECONDS": "2",
        "ACCRUAL_SWEEP_INTERVAL_SECONDS": "1",
        "POISON_WAGNER_GRADE": "3",
    }
    innocent = submit_many(backend, 5, "BATCH")
    [poison] = [
        backend.submit(eligible_applicant("BATCH-POISON", wagner_grade=3)).get_json()["id"],
    ]
    processes.start("beat", ["beat"], environment)  # one relay pass: the six go out as one batch
    processes.start("poison-worker", ["worker"], environment, module="tests.support.poison_worker")
    wait_until(
        lambda: decided(backend, [*innocent, poison]),
        timeout=120,
        what="every decision: " + processes.log("poison-worker")[-1500:],
    )
    assert_decided_exactly_once(backend, [*innocent, poison])
    with backend.db.sessions() as session:
        assert [session.get_one(Application, a).status for a in innocent] == ["eligible"] * 5
        killer = session.get_one(Application, poison)
        assert killer.status == "needs_review" and killer.dead_lettered_at is not None
        assert all(session.get_one(Application, a).dead_lettered_at is None for a in innocent)
