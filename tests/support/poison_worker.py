"""`accrual` whose screening engine kills its own process: a poison message, for the dead-letter tests.

Run as `python -m tests.support.poison_worker worker`. The patch is made before Celery forks its pool, so
every pool process inherits it: evaluating SIGKILLs the process doing it, as a segfaulting extension or the
kernel's OOM killer would. With POISON_WAGNER_GRADE set, only an applicant of that Wagner grade kills;
the others are evaluated by the real engine.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import services.applications.screening
from services.cli import main

_real_version = services.applications.screening.compiled_version
_only = os.environ.get("POISON_WAGNER_GRADE")


class _Fatal:
    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled

    def evaluate(self, observations: Any, *args: Any, **kwargs: Any) -> Any:
        if _only is None or str(observations.get("wagner_grade")) == _only:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.compiled.evaluate(observations, *args, **kwargs)


def _fatal_version(*args: Any, **kwargs: Any) -> _Fatal:
    return _Fatal(_real_version(*args, **kwargs))


services.applications.screening.compiled_version = _fatal_version  # type: ignore[assignment]

if __name__ == "__main__":
    main()
