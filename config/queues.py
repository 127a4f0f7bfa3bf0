"""The broker's queues, named once: read by the workers' routes, the relay, the dispatchers and metrics."""

from __future__ import annotations

SCREENING = "screening"
# Slow or hanging endpoints wait here, never ahead of screening; run a worker of its own in production.
NOTIFICATIONS = "notifications"

# There is no `default` queue any more: the counters it carried change in the writing transaction.
ALL = (SCREENING, NOTIFICATIONS)

# The queue of every task, by its family: the part of its Celery task name before the dot.
ROUTES = {"screening": SCREENING, "webhooks": NOTIFICATIONS, "mail": NOTIFICATIONS}


def queue_for(task_name: str) -> str:
    """The queue `task_name` is sent to; a task of no known family is a mistake, so KeyError."""
    return ROUTES[task_name.partition(".")[0]]
