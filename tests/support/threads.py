"""Running one piece of work from several threads at once, for the tests of concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Callable


def at_once(work: Callable[[], object], threads: int) -> list[BaseException]:
    """Run `work` in `threads` threads started together; what each that failed raised."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            raised.append(exc)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return raised
