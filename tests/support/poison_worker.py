"""`accrual` whose screening engine kills its own process: a poison message, for the dead-letter tests.

Run as `python -m tests.support.poison_worker worker`. The patch is made before Celery forks its pool, so
every pool process inherits it: evaluating SIGKILLs the process doing it, as a segfaulting extension or the
kernel's OOM killer would. With POISON_WAGNER_GRADE set, only an applicant of that Wagner grade kills;
the others are evaluated by the real engine.

Other faults, each set by a variable:
- POISON_SLEEP_SECONDS: a poisoned evaluation sleeps this long, then evaluates for real, instead of killing
  (a slow task, to kill mid-check or to outlive the broker's visibility timeout).
- POISON_MARKS: a directory where each poisoned evaluation leaves an empty file named `check-<pid>-<n>` as
  it starts, so a test knows which pool process is mid-check (a name, never the observations), and each
  delivery of a single application (`screening.run`) one named `delivery-<pid>-<n>` before it is counted.
- POISON_CELERY: JSON of Celery settings laid over the worker's live configuration (an unsafe worker).
- POISON_SKIP_SELF_CHECK: start without the start-up self-check, to force what it would refuse.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import services.applications.screening
from services.cli import main
from workers import self_check
from workers.celery_app import celery

_real_version = services.applications.screening.compiled_version
_real_count_delivery = services.applications.screening.count_delivery
_only = os.environ.get("POISON_WAGNER_GRADE")
_sleep = os.environ.get("POISON_SLEEP_SECONDS")
_marks = os.environ.get("POISON_MARKS")
_evaluations = itertools.count()


def _mark(kind: str) -> None:
    if _marks:
        (Path(_marks) / f"{kind}-{os.getpid()}-{next(_evaluations)}").touch()


class _Fatal:
    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled

    def evaluate(self, observations: Any, *args: Any, **kwargs: Any) -> Any:
        if _only is None or str(observations.get("wagner_grade")) == _only:
            _mark("check")
            if _sleep is None:
                os.kill(os.getpid(), signal.SIGKILL)
            else:
                time.sleep(float(_sleep))
        return self.compiled.evaluate(observations, *args, **kwargs)


def _fatal_version(*args: Any, **kwargs: Any) -> _Fatal:
    return _Fatal(_real_version(*args, **kwargs))


def _marked_delivery(*args: Any, **kwargs: Any) -> Any:
    _mark("delivery")
    return _real_count_delivery(*args, **kwargs)


services.applications.screening.compiled_version = _fatal_version  # type: ignore[assignment]
services.applications.screening.count_delivery = _marked_delivery
celery.conf.update(json.loads(os.environ.get("POISON_CELERY", "{}")))
if os.environ.get("POISON_SKIP_SELF_CHECK"):
    self_check.check = lambda app: self_check.Findings()

if __name__ == "__main__":
    main()
