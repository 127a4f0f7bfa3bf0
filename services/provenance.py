"""Who is acting, beyond the caller: this process's service identity and the request being served.

Every process declares what it is (`api`, `worker`, `notifier`, `beat`, or `cli` for a command run by
hand) once at start-up; its identity is that role, the host and the process id, so no two running
processes share one and an audit entry always says which process wrote it. A request's correlation id
is taken from `X-Request-Id` when the client sent a well-formed one, or made; the API answers with it,
the outbox event the request writes keeps it, and the worker that acts on that event works under it, so
a decision's audit entry and log lines lead back to the request and the user that caused it.

Log records carry both (`service`, `request_id`): services.log_lines makes every record with them.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

SERVICE_ROLES = frozenset({"api", "worker", "notifier", "beat", "cli"})
REQUEST_ID_HEADER = "X-Request-Id"
# Printable, no spaces, quotes or separators a log line or header could be split on: an id given by a
# client is echoed in headers and written to logs, so anything else is replaced by one of ours.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=@-]{0,63}")
MAX_SERVICE_LENGTH = 80

_role = "cli"
_request_id: ContextVar[str | None] = ContextVar("accrual_request_id", default=None)


def declare_service(role: str) -> None:
    """Name what this process is, from now on (a forked child keeps the role, with its own pid)."""
    global _role
    if role not in SERVICE_ROLES:
        raise ValueError(f"unknown service role {role!r}")
    _role = role


def service_identity() -> str:
    """`role@host:pid`: unique among the processes running at one time."""
    return f"{_role}@{socket.gethostname()}:{os.getpid()}"[:MAX_SERVICE_LENGTH]


def request_id() -> str | None:
    """The correlation id this context acts under, if any."""
    return _request_id.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(given: str | None) -> str:
    """The client's `X-Request-Id` when well formed (1-64 safe characters), else a new one."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return new_request_id()


@contextmanager
def correlated(correlation: str | None) -> Iterator[None]:
    """Act under `correlation` (None: under none) until the block ends."""
    token = _request_id.set(correlation)
    try:
        yield
    finally:
        _request_id.reset(token)


def set_request_id(correlation: str | None) -> object:
    """For a request hook pair: set now, `reset_request_id` with what this returns at teardown."""
    return _request_id.set(correlation)


def reset_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]
