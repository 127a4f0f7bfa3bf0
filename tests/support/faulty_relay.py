"""`accrual beat` that writes down what its relay publishes and which periodic jobs it runs, and may die in
the middle of a batch: for the relay and scheduler fault tests.

Run as `python -m tests.support.faulty_relay beat`:
- with RELAY_RECORD=PATH, each event id a broker publish carried is appended to PATH as `sent <event id>`
  once that publish returned, and each lease a periodic job took as `lease <job> <holder> <start> <end>`
  (the lease's own times, read back in the transaction that took it, as epoch seconds), so a test can
  count publishes per event and check that no two schedulers held a job's lease at once;
- with KILL_AFTER_SENDS=N, the process SIGKILLs itself as it makes its (N+1)th broker publish, so some of
  the batch's tasks are in the broker and none of its events is stamped published (the relay stamps a
  batch after publishing it).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

import workers.beat
import workers.leases
import workers.relay
from models import SchedulerLease
from services.cli import main

_limit = int(os.environ.get("KILL_AFTER_SENDS", "-1"))
_record = os.environ.get("RELAY_RECORD")
_sent = 0
_send_task = Celery.send_task
_messages = workers.relay._messages
_acquire = workers.leases.acquire
_events_of: dict[str, tuple[str, ...]] = {}  # task id -> the events its message carries


def _write(line: str) -> None:
    if _record:
        with open(_record, "a") as record:  # one short append per line: whole lines from every process
            record.write(line + "\n")


def _remembered_messages(app: Celery, claimed: Any) -> Any:
    messages = _messages(app, claimed)
    _events_of.update({message.task_id: message.events for message in messages})
    return messages


def _send_then_record(self: Celery, *args: Any, **kwargs: Any) -> Any:
    global _sent
    if _limit >= 0 and _sent >= _limit:
        os.kill(os.getpid(), signal.SIGKILL)
    _sent += 1
    result = _send_task(self, *args, **kwargs)
    for event_id in _events_of.get(kwargs.get("task_id", ""), ()):
        _write(f"sent {event_id}")
    return result


def _acquire_and_record(session: Session, name: str, holder: str, ttl: Any) -> bool:
    taken = _acquire(session, name, holder, ttl)
    if taken:
        until = session.scalar(select(SchedulerLease.lease_until).where(SchedulerLease.name == name))
        assert until is not None
        _write(f"lease {name} {holder} {(until - ttl).timestamp()} {until.timestamp()}")
    return taken


workers.relay._messages = _remembered_messages
Celery.send_task = _send_then_record
workers.beat.acquire = _acquire_and_record  # type: ignore[attr-defined]  # what Periodic calls

if __name__ == "__main__":
    main()
