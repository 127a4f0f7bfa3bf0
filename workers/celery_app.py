"""The Celery application, configured for at-least-once delivery with idempotent consumers.

`celery -A workers.celery_app worker` finds the module-level `celery`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from queue import Empty
from typing import Any

from celery import Celery
from kombu.transport import redis as kombu_redis
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

import services.audit  # noqa: F401  registers the audit trail's unit-of-work hooks in every worker
import workers.heartbeat  # noqa: F401  every worker beats while it runs
from config import Settings, get_settings, queues
from services.events.wakeup import Listener, can_wake, signal
from services.log_lines import LOG_FORMAT

log = logging.getLogger(__name__)


class ProcessSafeChannel(kombu_sqla.Channel):  # type: ignore[misc]
    """kombu's SQLAlchemy channel, safe across processes creating the broker's tables and queues, and
    across the threads of one worker using its single session.

    kombu guards that creation with an in-process lock only. When `accrual serve` started the worker
    and the relay together on a fresh broker file, both inserted the same queue row, and the loser's
    IntegrityError stopped the worker ("Unrecoverable error"). Losing that race is harmless: the row or
    table the other process created is the one wanted.

    The channel's one SQLAlchemy session is not thread-safe, yet a worker uses it from two threads: the
    consumer loop takes messages (`_get`) while billiard's result thread returns the task of a killed
    pool process to the queue (`_put`). Interleaved, their commits raised IllegalStateChangeError and
    stopped the worker; a lock per channel serialises them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._session_lock = threading.RLock()
        super().__init__(*args, **kwargs)

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> Any:
        with self._session_lock:
            stored = super()._put(queue, payload, **kwargs)
        signal(self.session.get_bind().engine.url, BROKER_CHANNEL)  # committed: wake a waiting worker
        return stored

    def _get(self, queue: str) -> Any:
        with self._session_lock:
            return super()._get(queue)

    def _purge(self, queue: str) -> Any:
        with self._session_lock:
            return super()._purge(queue)

    def _size(self, queue: str) -> Any:
        with self._session_lock:
            return super()._size(queue)

    def _open(self) -> Any:
        for attempt in range(3):
            try:
                return super()._open()
            except OperationalError as error:
                if "already exists" not in str(error) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _get_or_create(self, queue: str) -> Any:
        with self._session_lock:
            return self._get_or_create_unlocked(queue)

    def _get_or_create_unlocked(self, queue: str) -> Any:
        try:
            return super()._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()


kombu_sqla.Transport.Channel = ProcessSafeChannel

# A message put in the embedded broker wakes a worker waiting for one (a named pipe beside the broker's
# file, services.events.wakeup), so the worker need not poll the file every few milliseconds: kombu's
# virtual transport sleeps `polling_interval` whenever every queue is empty, and each of its polls
# takes the file's write lock (BEGIN IMMEDIATE) once per queue.
BROKER_CHANNEL = "accrual_broker"


def _drain_events_woken(self: Any, connection: Any, timeout: float | None = None) -> None:
    """kombu's drain_events, with the sleep between empty polls ended early by a wake-up. (While the
    worker holds as many tasks as it may prefetch, it still rechecks every broker poll interval.)"""
    started = time.monotonic()
    while True:
        try:
            self.cycle.get(self._deliver, timeout=timeout)
            return
        except Empty:
            waited = time.monotonic() - started
            if timeout is not None and waited >= timeout:
                raise TimeoutError() from None
            pause = self.polling_interval if timeout is None else min(self.polling_interval, timeout - waited)
            if _can_consume(self):  # the queues were read and were empty: wait for a message to be put
                _broker_listener(self).wait(pause)
            else:  # the prefetch limit is reached: a task must finish first, and no wake-up says when
                time.sleep(min(pause, self.accrual_recheck_interval))


def _can_consume(transport: Any) -> bool:
    return any(channel._consumers and channel.qos.can_consume() for channel in transport.channels)


def _broker_listener(transport: Any) -> Listener:
    listener: Listener | None = getattr(transport, "_accrual_listener", None)
    if listener is None:
        url = transport.channels[0].session.get_bind().engine.url
        listener = transport._accrual_listener = Listener(url, channels=(BROKER_CHANNEL,))
    return listener


kombu_sqla.Transport.drain_events = _drain_events_woken
kombu_sqla.Transport.accrual_recheck_interval = 0.05  # until the settings' broker poll interval is set


class OutageTolerantQoS(kombu_redis.QoS):  # type: ignore[misc]
    """kombu's Redis QoS, whose closing does not crash a worker that lost Redis with tasks in hand.

    When Redis stopped while a worker held unacknowledged tasks, closing the channel tried to push them
    back through a connection that was already gone, raised AttributeError ('NoneType' object has no
    attribute 'hostname'), which kombu does not count as a connection error, and the worker stopped
    with "Unrecoverable error" instead of reconnecting. The tasks cannot be returned while Redis is
    away anyway: Redis restores them after the visibility timeout if it kept them, and Accrual's sweep
    publishes any application still undecided again if it did not.
    """

    def restore_unacked(self, client: Any = None) -> Any:
        try:
            return super().restore_unacked(client)
        except (AttributeError, *kombu_redis.Transport.connection_errors) as exc:
            log.warning(
                "could not return %d unacknowledged tasks to Redis (%s); they come back later",
                len(self._delivered),
                type(exc).__name__,
            )
            self._delivered.clear()
            return None


kombu_redis.Channel.QoS = OutageTolerantQoS


def _prepare_embedded_broker(settings: Settings) -> None:
    """WAL on the broker's SQLite file (it persists in the file) and the transport's polling interval.

    The interval must be set on the transport class: passed as a transport option it crashed the worker.
    """
    path = Path(settings.broker_url.split(":///", 1)[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    kombu_sqla.Transport.accrual_recheck_interval = settings.broker_poll_interval_seconds
    kombu_sqla.Transport.polling_interval = (
        max(settings.broker_poll_interval_seconds, settings.wakeup_poll_seconds)
        if can_wake(make_url(f"sqlite:///{path}"))
        else settings.broker_poll_interval_seconds
    )


def celery_config(settings: Settings) -> dict[str, Any]:
    transport_options: dict[str, Any] = {}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        transport_options = {
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 5,
            "socket_keepalive": True,
            "health_check_interval": 25,
        }
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": queues.SCREENING,
        "task_routes": {f"{family}.*": {"queue": queue} for family, queue in queues.ROUTES.items()},
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "worker_hijack_root_logger": False,
        # Every line names the process and the request the task follows (services.provenance).
        "worker_log_format": LOG_FORMAT,
        "worker_task_log_format": LOG_FORMAT,
        "worker_max_tasks_per_child": 1000,
        "broker_connection_timeout": 4,
        "include": [
            "workers.tasks.screening",
            "workers.tasks.webhooks",
            "workers.tasks.mail",
        ],
    }


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for `settings`; tasks are registered by the `include` list."""
    settings = settings or get_settings()
    if settings.uses_embedded_broker:
        _prepare_embedded_broker(settings)
    app = Celery("accrual")
    app.conf.update(celery_config(settings))
    app.conf.accrual_settings = settings
    return app


celery = make_celery()
