"""Load shedding: a request that waited too long for a server thread is answered 503 before any work.

Under overload (more clients than `ACCRUAL_API_WORKERS` x `ACCRUAL_API_THREADS`), gunicorn's gthread
workers queue connections in front of their thread pools without limit. A request that waited there
for seconds would then do its full work for a client that has probably given up or will retry, and
the queue would only grow. `QueueTimingWorker` measures each request's wait from the moment its
connection was queued to the moment a thread took it and hands it to the application in a header it
sets itself (a client's own value is discarded); `shed_late_requests` answers those that waited longer
than `ACCRUAL_API_MAX_QUEUE_SECONDS` with 503 and `Retry-After`. Nothing has been read or written at
that point, so a shed submission leaves nothing behind and can be retried with its Idempotency-Key.

The worker also ends a connection whose request body the answer left unread (a 413, a 401 ahead of
a large upload) and says `Connection: close`: gunicorn would otherwise announce keep-alive, then
give up draining the rest of the body (it reads at most 64 KiB) and close the socket anyway, losing
whatever the client sent next on it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from types import TracebackType
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from flask import current_app, request
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.gthread import ThreadWorker

from services.problems import Problem

QUEUE_WAIT_HEADER = "X-ACCRUAL-QUEUE-WAIT"  # gunicorn keeps header names upper-case
QUEUE_WAIT_ENVIRON = "HTTP_X_ACCRUAL_QUEUE_WAIT"
# Probes and scrapes must answer while the API is busy: that is when they matter.
NEVER_SHED = ("/healthz", "/readyz", "/metrics")
log = logging.getLogger(__name__)
_serving = threading.local()  # the gunicorn request this worker thread is answering, if any
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


class QueueTimingWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, telling the application how long each request waited for a thread
    and closing a connection whose request body was left unread."""

    wsgi: WSGIApplication

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = close_when_body_unread(self.wsgi)

    def enqueue_req(self, conn: Any) -> None:
        conn.accrual_queued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        queued_at = getattr(conn, "accrual_queued_at", None)
        conn.accrual_queue_wait = 0.0 if queued_at is None else time.monotonic() - queued_at
        return super().handle(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        waited = getattr(conn, "accrual_queue_wait", 0.0)
        conn.accrual_queue_wait = 0.0  # a later request on a kept-alive connection is timed afresh
        req.headers = [(name, value) for name, value in req.headers if name != QUEUE_WAIT_HEADER]
        req.headers.append((QUEUE_WAIT_HEADER, f"{waited:.6f}"))
        _serving.request = req
        try:
            return super().handle_request(req, conn)
        finally:
            _serving.request = None


def body_unread(req: Any) -> bool:
    """Whether the application left part of gunicorn request `req`'s body on the connection."""
    reader = getattr(req.body, "reader", None)
    if isinstance(reader, LengthReader):
        return bool(reader.length > 0)
    if isinstance(reader, ChunkedReader):
        return reader.parser is not None  # its parser is dropped once the last chunk was read
    return False


def close_when_body_unread(application: WSGIApplication) -> WSGIApplication:
    """`application`, answering with `Connection: close` (and closing) when its answer starts before
    the request's body was read. Runs under QueueTimingWorker, which names the request it serves."""

    def closing(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
            req = getattr(_serving, "request", None)
            if req is not None and body_unread(req):
                req.must_close = True  # gunicorn then says `Connection: close` and closes gracefully
            return start_response(status, headers, exc_info)

        return application(environ, start)

    return closing


def queue_wait() -> float:
    """Seconds this request waited for a server thread; 0 outside QueueTimingWorker."""
    try:
        return max(0.0, float(request.environ.get(QUEUE_WAIT_ENVIRON, 0.0)))
    except ValueError:
        return 0.0


def shed_late_requests() -> None:
    """503 with Retry-After for a request that waited past the limit; runs before anything else."""
    limit: float = current_app.extensions["accrual.settings"].api_max_queue_seconds
    if limit <= 0 or request.path.startswith(NEVER_SHED):
        return
    waited = queue_wait()
    if waited <= limit:
        return
    retry_after = max(1, math.ceil(waited))
    log.warning("shed %s %s after %.2f s in the server's queue", request.method, request.path, waited)
    raise Problem(
        503,
        "overloaded",
        f"the server is overloaded: this request waited {waited:.1f} s for a thread; nothing was done, "
        f"retry after {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )
