"""The worker's start-up self-check: the delivery guarantees it relies on, read from the live configuration.

Exactly-once decisions rest on at-least-once delivery (late acks, requeue on a lost pool process, one
task reserved at a time, a task cancelled when its broker connection drops) and on a task never outliving
the broker's visibility timeout. Most of these are fixed in `workers.celery_app.celery_config` rather than
settings, so the check reads the Celery app the worker is about to run, whatever changed it (a patched
module, a `celeryconfig` laid over it), and the Redis server it will use.

A refusal stops the worker before it takes a task; a warning is printed and the worker starts. Redis
without an append-only file only delays work (the outbox and the sweep publish again whatever a restart
lost), so it warns; an evicting Redis can drop kombu's bindings and stop every publish, so it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery

REDIS_SCHEMES = ("redis://", "rediss://")
REDIS_TIMEOUT_SECONDS = 2.0


@dataclass
class Findings:
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# (Celery setting, the value the guarantees need, why)
REQUIRED = (
    ("task_acks_late", True, "a task is acknowledged before it runs and lost if its worker dies"),
    ("task_reject_on_worker_lost", True, "the task of a killed pool process is acknowledged, not requeued"),
    ("worker_prefetch_multiplier", 1, "a dying worker holds more than one task per process"),
    (
        "worker_cancel_long_running_tasks_on_connection_loss",
        True,
        "a task keeps running after its broker connection dropped while Redis delivers it again",
    ),
    ("task_always_eager", False, "tasks run in the publisher's process, never through the broker"),
)


def check(app: Celery) -> Findings:
    """What is unsafe in the worker's configuration and its broker, as refusals and warnings."""
    findings = Findings()
    conf = app.conf
    for name, needed, consequence in REQUIRED:
        if conf.get(name) != needed:
            findings.refusals.append(f"Celery's {name} is {conf.get(name)!r}, not {needed!r}: {consequence}")
    if conf.broker_url.startswith(REDIS_SCHEMES):
        _check_visibility(conf, findings)
        _check_redis(conf.broker_url, findings)
    return findings


def _visibility_timeouts(conf: Any) -> dict[str, Any]:
    timeouts = {"broker_transport_options": (conf.broker_transport_options or {}).get("visibility_timeout")}
    if conf.get("result_backend_transport_options"):
        timeouts["result_backend_transport_options"] = conf.result_backend_transport_options.get(
            "visibility_timeout"
        )
    if conf.get("visibility_timeout") is not None:
        timeouts["visibility_timeout"] = conf.get("visibility_timeout")
    return timeouts


def _check_visibility(conf: Any, findings: Findings) -> None:
    timeouts = _visibility_timeouts(conf)
    if len(set(timeouts.values())) > 1:
        listed = ", ".join(f"{where}={value}" for where, value in timeouts.items())
        findings.refusals.append(f"the visibility timeouts differ ({listed}): the shortest one wins")
    visibility = min((v for v in timeouts.values() if v is not None), default=None)
    if visibility is None:
        findings.refusals.append(
            "no visibility timeout is set: Redis's default (1 hour) is not the configured one"
        )
        return
    limit = conf.task_time_limit
    if limit is None or limit >= visibility:
        findings.refusals.append(
            f"task_time_limit ({limit}) is not below the visibility timeout ({visibility}): Redis would "
            "deliver a running task again to another worker"
        )


def _check_redis(url: str, findings: Findings) -> None:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
    )
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        appendonly = client.config_get("appendonly").get("appendonly")
    except redis.RedisError as exc:  # CONFIG renamed or forbidden (managed Redis), or Redis away
        findings.warnings.append(
            f"could not read the broker's Redis configuration ({type(exc).__name__}): check by hand that "
            "maxmemory-policy is noeviction and appendonly is yes"
        )
        return
    finally:
        client.close()
    if policy != "noeviction":
        findings.refusals.append(
            f"the broker's Redis has maxmemory-policy {policy}, not noeviction: it may evict queued "
            "tasks and kombu's bindings"
        )
    if appendonly != "yes":
        findings.warnings.append(
            f"the broker's Redis has appendonly {appendonly}, not yes: a restart loses the queued tasks, "
            "which the sweep publishes again after ACCRUAL_SWEEP_AFTER_SECONDS"
        )
