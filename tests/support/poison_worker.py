"""`accrual` whose screening engine kills its own process: a poison message, for the dead-letter tests.

Run as `python -m tests.support.poison_worker worker`. The patch is made before Celery forks its pool, so
every pool process inherits it: each evaluation SIGKILLs the process doing it, as a segfaulting extension
or the kernel's OOM killer would.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import services.applications.screening
from services.cli import main


class _Fatal:
    def evaluate(self, *_: Any, **__: Any) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)


def _fatal_version(*_: Any, **__: Any) -> _Fatal:
    return _Fatal()


services.applications.screening.compiled_version = _fatal_version  # type: ignore[assignment]

if __name__ == "__main__":
    main()
