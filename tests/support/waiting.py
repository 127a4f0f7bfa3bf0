"""Waiting on something another thread, process or transaction does, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    condition: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """The first truthy result of `condition`, polled every `interval` seconds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
