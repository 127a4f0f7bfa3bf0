"""The broker's queues, named once: read by the workers' routes, the relay, the dispatchers and metrics."""

from __future__ import annotations

SCREENING = "screening"
# Counters and maintenance: short tasks that must not wait behind notifications.
DEFAULT = "default"
# Slow or hanging endpoints wait here, never ahead of screening; run a worker of its own in production.
NOTIFICATIONS = "notifications"

ALL = (SCREENING, DEFAULT, NOTIFICATIONS)

# The queue of every task, by its family: the part of its Celery task name before the dot.
ROUTES = {"screening": SCREENING, "reporting": DEFAULT, "webhooks": NOTIFICATIONS, "mail": NOTIFICATIONS}


def queue_for(task_name: str) -> str:
    """The queue `task_name` is sent to; a task of no known family is a mistake, so KeyError."""
    return ROUTES[task_name.partition(".")[0]]
