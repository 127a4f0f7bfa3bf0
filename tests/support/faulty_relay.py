"""`accrual` whose relay dies in the middle of a batch: for the relay fault tests.

Run as `python -m tests.support.faulty_relay beat` with KILL_AFTER_SENDS=N: the process SIGKILLs itself
as it makes its (N+1)th broker publish, so some of the batch's tasks are in the broker and none of its
events is stamped published (the relay stamps a batch after publishing it).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from celery import Celery

from services.cli import main

_limit = int(os.environ["KILL_AFTER_SENDS"])
_sent = 0
_send_task = Celery.send_task


def _send_then_die(self: Celery, *args: Any, **kwargs: Any) -> Any:
    global _sent
    if _sent >= _limit:
        os.kill(os.getpid(), signal.SIGKILL)
    _sent += 1
    return _send_task(self, *args, **kwargs)


Celery.send_task = _send_then_die  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
