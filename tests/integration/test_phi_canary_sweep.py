"""Scenario 38 of RELIABILITY.md §7, the PHI canary sweep of the broker: applications carrying canary
values in every health field (tests/integration/test_log_privacy.py's, which sweeps the logs of the
same flow) go through a real lifecycle with the real `accrual worker` and `accrual beat`, on SQLite
with the embedded broker and on PostgreSQL with Redis. The broker is read whole twice: while the
screening tasks wait in their queue (beat running, no worker yet) and after the lifecycle (screening,
a correction screened again, review, enrolment, withdrawal): every Redis key, every value of every
key (strings, lists, hashes, sets) and every queued or unacknowledged message's body, base64-decoded
into its task arguments; for the embedded broker every row of its SQLite file, decoded alike. No
canary may be there, nor in the worker's and the beat's logs. The application ids must be: that is
how the sweep knows it read the queued tasks and is not passing on an empty broker.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Event
from tests.integration.test_log_privacy import (
    CORRECTED_HEMOGLOBIN,
    REVIEW_REASON,
    SECRET_KEY,
    VALUE_CANARIES,
    WITHDRAW_REASON,
    canary_applicant,
    leaks,
)
from tests.support.applications import patch, post
from tests.support.pipeline import decided
from tests.support.processes import LOG_COMPLETE_GRACE_SECONDS, Processes
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
CANARIES = (*VALUE_CANARIES, "LEAK-CANARY")  # every screening id and reason carries LEAK-CANARY
EMBED = '"callbacks"'  # in every decoded Celery body ([args, kwargs, embed]), never in an encoded one


def decoded(value: Any) -> Iterator[str]:
    """A stored value as text, and inside it every message body decoded: kombu keeps a task's
    arguments base64-encoded in `body`, where a plain search would never see them."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    yield text
    try:
        parsed = json.loads(text)
    except ValueError:
        return
    yield from _bodies(parsed)


def _bodies(parsed: Any) -> Iterator[str]:
    if isinstance(parsed, list):
        for item in parsed:
            yield from _bodies(item)
    elif isinstance(parsed, dict):
        body, properties = parsed.get("body"), parsed.get("properties")
        if (
            isinstance(body, str)
            and isinstance(properties, dict)
            and properties.get("body_encoding") == "base64"
        ):
            yield base64.b64decode(body).decode(errors="replace")
        for item in parsed.values():
            yield from _bodies(item)


def redis_contents(url: str) -> Iterator[str]:
    """Every key of the broker's Redis database and everything stored under it."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(count=500):
            yield key.decode(errors="replace")
            kind = client.type(key).decode()
            if kind == "string":
                values: Any = [client.get(key)]
            elif kind == "list":
                values = client.lrange(key, 0, -1)
            elif kind == "hash":
                values = [part for pair in client.hgetall(key).items() for part in pair]
            elif kind == "set":
                values = client.smembers(key)
            elif kind == "zset":
                values = client.zrange(key, 0, -1)
            else:
                values = [client.dump(key)]
            for value in values:
                yield from decoded(value)
    finally:
        client.close()


def sqlite_broker_contents(path: Path) -> Iterator[str]:
    """Every cell of every table of the embedded broker's SQLite file (messages and queues)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the file
                for cell in row:
                    if cell is not None:
                        yield from decoded(cell)
    finally:
        connection.close()


def broker_contents(stack: Stack) -> str:
    url = stack.settings.broker_url
    if url.startswith("redis://"):
        return "\n".join(redis_contents(url))
    path = Path(url.split(":///", 1)[1])
    return "\n".join(sqlite_broker_contents(path)) if path.exists() else ""


def found_in(text: str) -> list[str]:
    """Each canary found, with what surrounds it."""
    return [text[max(0, text.find(c) - 150) : text.find(c) + 50] for c in leaks(text, CANARIES)]


def holding(text: str, ids: tuple[str, ...]) -> str | None:
    """The broker's text once it holds a task for every one of the applications."""
    return text if all(i in text for i in ids) else None


def pending_events(stack: Stack) -> int:
    with stack.db.sessions() as session:
        return int(session.scalar(select(func.count()).where(Event.status == "pending")) or 0)


def submit(stack: Stack, number: int, **changes: Any) -> str:
    response = stack.submit(canary_applicant(number, **changes))
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def test_s38_no_canary_reaches_the_broker_queued_or_after_a_full_lifecycle(
    backend: Stack, processes: Processes
) -> None:
    stack = backend
    environment = {**stack.env(), "ACCRUAL_LOG_LEVEL": "DEBUG"}
    processes.start("beat", ["beat"], environment)  # the relay publishes; no worker takes anything yet
    eligible, needs_review, ineligible = (
        submit(stack, 1),
        submit(stack, 2, hiv_positive=None),
        submit(stack, 3, wagner_grade=5),
    )
    ids = (eligible, needs_review, ineligible)

    queued = wait_until(
        lambda: holding(broker_contents(stack), ids),
        timeout=60,
        what="the screening tasks in the broker: " + processes.log("beat")[-1500:],
    )
    assert EMBED in queued, "no message body was decoded: the task arguments went unread"
    assert not leaks(queued, CANARIES), f"queued tasks hold {found_in(queued)}"

    processes.start("worker", ["worker"], environment)
    wait_until(
        lambda: decided(stack, list(ids)), timeout=90, what="decisions: " + processes.log("worker")[-1500:]
    )
    lifecycle(stack, eligible, needs_review, ineligible)
    wait_until(lambda: decided(stack, [ineligible]), timeout=90, what="the corrected application screened")
    wait_until(lambda: pending_events(stack) == 0, timeout=60, what="every event relayed")

    after = broker_contents(stack)
    assert not leaks(after, CANARIES), f"the broker holds {found_in(after)} after the lifecycle"
    processes.stop_all(LOG_COMPLETE_GRACE_SECONDS)
    for name in ("worker", "beat"):
        log = processes.log(name)
        assert log.strip(), f"the {name} logged nothing"
        secrets = [*CANARIES, stack.admin, stack.coordinator, SECRET_KEY]
        assert not leaks(log, secrets), f"the {name}'s log holds {leaks(log, secrets)}"


def lifecycle(stack: Stack, eligible: str, needs_review: str, ineligible: str) -> None:
    """Review, enrolment, withdrawal and a correction (screened again by the worker), with canaries."""
    reviewed = post(stack, needs_review, "review", {"decision": "eligible", "reason": REVIEW_REASON})
    assert reviewed.status_code == 200, reviewed.get_json()
    assert post(stack, needs_review, "enroll", {"reason": "LEAK-CANARY-REASON enrolled"}).status_code == 200
    assert post(stack, eligible, "withdraw", {"reason": WITHDRAW_REASON}).status_code == 200
    corrected = patch(stack, ineligible, {"hemoglobin_g_l": {"value": CORRECTED_HEMOGLOBIN, "unit": "g/dL"}})
    assert corrected.status_code in (200, 202), corrected.get_json()
