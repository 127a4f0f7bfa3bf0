"""Child processes a test starts (`accrual` commands, faulty variants), stopped when it ends."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until

# After a test: its state is thrown away with it, so a child still shutting down politely after a
# second (a Celery worker finishing its pool) gains nothing by waiting. A test that reads a child's log
# after stopping it gives its children longer, to flush what they buffered.
STOP_GRACE_SECONDS = 1.0
LOG_COMPLETE_GRACE_SECONDS = 10.0


class Processes:
    """Child processes started by a test, stopped (and their logs kept) when it ends."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.children: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str], module: str = "services.cli"
    ) -> subprocess.Popen[bytes]:
        """`accrual ARGS...`, or another module's command line (a worker with a fault built in)."""
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.logs.append(log)
        child = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append(child)
        return child

    def log(self, name: str) -> str:
        """What the child `name` has written so far."""
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every child, politely first, and close their logs."""
        # SIGTERM to the main process only: signalled as a group, a Celery worker's pool children can die
        # holding billiard's queue lock, and the main process then hangs at exit until SIGKILL.
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + grace  # one deadline for all
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, 9)  # whatever is left of its group
            child.wait(5)
        for log in self.logs:
            log.close()


def start_api(
    processes: Processes,
    environment: dict[str, str],
    port: int,
    name: str = "api",
    module: str = "services.cli",
) -> str:
    """`accrual api` (or a faulty variant's `module`) on a loopback `port`, once its /healthz answers; its
    base URL."""
    base = f"http://127.0.0.1:{port}"
    processes.start(name, ["api", "--port", str(port)], environment, module)

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_until(healthy, timeout=60, what="the API: " + processes.log(name)[-1500:])
    return base
