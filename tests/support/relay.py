"""The outbox relay, run in the test's own process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery
from sqlalchemy import select

from config import queues
from models import Event, EventStatus
from tests.support.stack import Stack
from workers.celery_app import make_celery
from workers.relay import relay_once

BATCH = 100


@contextmanager
def in_memory_broker(stack: Stack) -> Iterator[Celery]:
    """A Celery app of the stack over kombu's in-process memory transport, emptied when done.

    Not the stack's embedded broker: its SQLAlchemy transport trips a deprecation warning, which the
    suite makes an error, and a mapper that failed to configure stays broken for the whole process."""
    app = make_celery(stack.settings.model_copy(update={"broker_url": "memory://"}))
    try:
        yield app
    finally:
        with app.connection_for_write() as connection:
            for queue in queues.ALL:
                connection.default_channel.queue_purge(queue)
        app.close()


def relay(stack: Stack, holder: str = "test-relay") -> int:
    """Relay every due event as `accrual beat` would, batch after batch until none is due: its tasks are
    published (no worker reads them here) and its webhook deliveries written as it is stamped published.
    How many events were handled; an event the relay could not publish fails the test."""
    handled = 0
    with in_memory_broker(stack) as app:
        while batch := relay_once(stack.db, app, holder, BATCH, stack.settings.outbox_max_attempts):
            handled += batch
    unsent = select(Event.last_error).where(Event.status == EventStatus.PENDING.value, Event.last_error != "")
    with stack.db.sessions() as session:
        failed = session.scalars(unsent).all()
    assert not failed, f"the relay could not publish: {failed}"
    return handled
