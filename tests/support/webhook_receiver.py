"""A real HTTP receiver on loopback for webhook tests: records each request, answers as scripted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Answers the scripted statuses in turn (then `default`); `hold` seconds before the first answer,
    `hang` seconds before every answer (both may be changed while it runs)."""

    port: int = 0
    script: list[int] = field(default_factory=list)
    default: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: float = 0.0
    hang: float = 0.0
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/accrual"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                        )
                    )
                    first = len(receiver.received) == 1
                    status = receiver.script.pop(0) if receiver.script else receiver.default
                if first and receiver.hold:
                    time.sleep(receiver.hold)
                if receiver.hang:
                    time.sleep(receiver.hang)
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        # Stopping never waits for a request still hanging: the sender has given up on it long since.
        self._server.daemon_threads, self._server.block_on_close = True, False
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]


@contextmanager
def receiving(**options: Any) -> Iterator[Receiver]:
    receiver = Receiver(**options).start()
    try:
        yield receiver
    finally:
        receiver.stop()
