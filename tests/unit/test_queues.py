"""Every task goes to a queue of config/queues.py, by Celery's routes and by the dispatchers alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import Celery

from config import Settings, queues
from workers.celery_app import make_celery

# The Celery task names are part of the contract (docs/API.md): this list changes only with it.
TASKS = {
    "screening.run": queues.SCREENING,
    "screening.run_batch": queues.SCREENING,
    "screening.rescreen_trial": queues.SCREENING,
    "webhooks.deliver": queues.NOTIFICATIONS,
    "mail.compose": queues.NOTIFICATIONS,
    "mail.send": queues.NOTIFICATIONS,
}


@pytest.fixture
def app(tmp_path: Path) -> Celery:
    celery = make_celery(Settings(data_dir=tmp_path, secret_key="x"))
    celery.loader.import_default_modules()
    return celery


def test_the_registered_tasks_are_the_known_ones(app: Celery) -> None:
    assert {name for name in app.tasks if not name.startswith("celery.")} == set(TASKS)


@pytest.mark.parametrize(("task", "queue"), TASKS.items())
def test_each_task_is_routed_to_its_queue(app: Celery, task: str, queue: str) -> None:
    assert queues.queue_for(task) == queue
    assert app.amqp.router.route({}, task)["queue"].name == queue


def test_every_queue_receives_some_task() -> None:
    assert set(TASKS.values()) == set(queues.ALL)


def test_a_task_of_no_known_family_has_no_queue() -> None:
    with pytest.raises(KeyError):
        queues.queue_for("unknown.task")
