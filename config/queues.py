"""The broker's queues, named once: read by the workers' routes, the relay, the dispatchers and metrics."""

from __future__ import annotations

SCREENING = "screening"
# Counters and maintenance: short tasks that must not wait behind notifications.
DEFAULT = "default"
# Slow or hanging endpoints wait here, never ahead of screening; run a worker of its own in production.
NOTIFICATIONS = "notifications"

ALL = (SCREENING, DEFAULT, NOTIFICATIONS)
