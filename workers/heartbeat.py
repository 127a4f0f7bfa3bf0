"""A worker's heartbeat: a thread of the worker's main process writes it while the worker runs.

Connected to Celery's worker signals, so every `accrual worker` (and the worker `accrual serve` starts)
beats from when it is ready until it shuts down cleanly, when its row is removed. A worker killed
outright stops beating, and the scheduler hands its work out again (services.events.heartbeats).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from config import Settings
from services.events.heartbeats import beat, forget
from workers.resources import database_for

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats every `settings.worker_heartbeat_seconds` under a name no other worker start shares."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Unique per start: a worker restarted on the same host, or in a container that keeps its
        # hostname and runs it as pid 1 again, must not renew its dead predecessor's row.
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accrual-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove the row (the thread does, after its last beat, so no late beat can
        write it back); waits a few seconds at most: a row left behind is reaped by the scheduler."""
        self._stop.set()
        self._thread.join(timeout=max(5.0, self.settings.worker_heartbeat_seconds * 2))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with database_for(self.settings).transaction() as session:
                    beat(session, self.name)
            except Exception as exc:  # a database away: beat again later, never stop the worker
                log.warning("heartbeat of %s failed: %s", self.name, type(exc).__name__)
            self._stop.wait(self.settings.worker_heartbeat_seconds)
        try:
            with database_for(self.settings).transaction() as session:
                forget(session, self.name)
        except Exception as exc:  # the database may be away: the scheduler will reap the row
            log.warning("could not remove the heartbeat of %s: %s", self.name, type(exc).__name__)


_running: list[Heartbeat] = []


def _start_beating(sender: Any = None, **_: Any) -> None:
    settings = getattr(sender.app.conf, "accrual_settings", None) if sender is not None else None
    if settings is None:  # a Celery app that is not Accrual's
        return
    heartbeat = Heartbeat(settings)
    heartbeat.start()
    _running.append(heartbeat)


def _stop_beating(**_: Any) -> None:
    while _running:
        _running.pop().stop()


worker_ready.connect(_start_beating, weak=False)
worker_shutdown.connect(_stop_beating, weak=False)
