"""Scenario 17 of RELIABILITY.md §7: a receiver that hangs for 60 s does not starve screening or other
endpoints, and the sender gives up on it at the configured timeout (ACCRUAL_WEBHOOK_TIMEOUT_SECONDS,
at most 60 by the settings' bound, 10 by default; a short one here).

Real processes: `accrual beat` (relay and dispatcher), a worker consuming only the screening queue and
one consuming only the notifications queue (config/queues.py: slow endpoints wait there, never ahead of
screening), on SQLite with the embedded broker and on PostgreSQL with Redis.

What isolates one endpoint from another is the notifications worker's pool: a hanging attempt holds one
child until its timeout, and the others go on. As many hanging deliveries as children would hold them
all until the timeout (then each is retried later, on the schedule); the hanging endpoint here is owed
one delivery (a new site's `site.status_changed`), the healthy one every application's events.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Application, WebhookAttempt, WebhookDelivery
from tests.support.http import auth
from tests.support.pipeline import submit_many
from tests.support.processes import Processes
from tests.support.stack import TRIAL, Stack
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import receiving
from tests.support.webhooks import subscribe

pytestmark = pytest.mark.slow
TIMEOUT = 15  # seconds; the receiver hangs for 60
HANG = 60
ENV = {
    "ACCRUAL_WEBHOOK_ALLOW_PRIVATE": "true",
    "ACCRUAL_WEBHOOK_RETRY_SCHEDULE": "3600",  # the hanging delivery's retry falls after the test
    "ACCRUAL_WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT),
    "ACCRUAL_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "0.1",
}


def start_isolated_workers(processes: Processes, stack: Stack) -> None:
    environment = {**stack.env(), **ENV}
    processes.start("screening", ["worker", "--queues", "screening", "--concurrency", "1"], environment)
    processes.start("notify", ["worker", "--queues", "notifications", "--concurrency", "2"], environment)
    processes.start("beat", ["beat"], environment)


def logs(processes: Processes) -> str:
    return "".join(processes.log(name)[-1500:] for name in ("screening", "notify", "beat"))


def test_s17_a_hanging_receiver_times_out_without_holding_up_screening_or_other_endpoints(
    pipeline: Stack, processes: Processes
) -> None:
    with receiving(hang=HANG) as hanging, receiving() as healthy:
        stuck = subscribe(pipeline, hanging.url, ["site.status_changed"])
        subscribe(pipeline, healthy.url, ["application.submitted", "application.screened"])
        start_isolated_workers(processes, pipeline)
        site = {"name": "Shanghai site", "city": "Shanghai", "country": "China"}
        added = pipeline.client.post(f"/api/v1/trials/{TRIAL}/sites", json=site, headers=auth(pipeline.admin))
        assert added.status_code == 201, added.get_json()
        wait_until(lambda: hanging.received, timeout=60, what="the hanging request: " + logs(processes))
        ids = submit_many(pipeline, 3, "HANG")  # while the receiver holds the attempt open
        wait_until(lambda: len(healthy.received) >= 6, timeout=60, what="the healthy endpoint's 6")
        wait_until(lambda: attempt_of(pipeline, stuck["id"]) is not None, timeout=HANG, what="the time-out")
    given_up = attempt_of(pipeline, stuck["id"])
    assert given_up is not None and given_up.error == "timed out" and given_up.status_code is None
    assert TIMEOUT * 1000 <= given_up.latency_ms < HANG * 1000  # it waited its timeout, not the hang
    with pipeline.db.sessions() as session:
        decided = session.scalars(select(Application.decided_at).where(Application.id.in_(ids))).all()
        delivered = session.scalars(
            select(WebhookDelivery.completed_at).where(WebhookDelivery.subscription_id != stuck["id"])
        ).all()
    # Everything else was done while the hanging attempt was still waiting for its answer.
    assert len(decided) == 3 and all(at is not None and at < given_up.attempted_at for at in decided)
    assert len(delivered) == 6 and all(at is not None and at < given_up.attempted_at for at in delivered)
    assert len(hanging.received) == 1  # its retry waits for the schedule


def attempt_of(stack: Stack, webhook_id: str) -> WebhookAttempt | None:
    """The first recorded attempt of the subscription's delivery, if any is recorded yet."""
    with stack.db.sessions() as session:
        return session.scalars(
            select(WebhookAttempt)
            .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
            .where(WebhookDelivery.subscription_id == webhook_id)
        ).first()
