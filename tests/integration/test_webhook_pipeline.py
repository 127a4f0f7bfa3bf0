"""Webhooks through real processes: relay and dispatcher (accrual beat), Celery worker, HTTP receiver.

On SQLite with the embedded broker and on PostgreSQL with Redis: every subscribed event reaches the
receiver signed, and a worker killed in the middle of a delivery does not lose it.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from models import WebhookDelivery
from tests.support.applicants import eligible_applicant
from tests.support.mail import Inbox
from tests.support.pipeline import start_pipeline, submit_many
from tests.support.processes import Processes
from tests.support.servers import free_port
from tests.support.stack import Stack
from tests.support.waiting import wait_until
from tests.support.webhook_receiver import receiving
from tests.support.webhooks import subscribe

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning:aiosmtpd")]
HOOK_ENV = {
    "ACCRUAL_WEBHOOK_ALLOW_PRIVATE": "true",
    "ACCRUAL_WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1",
    "ACCRUAL_WEBHOOK_TIMEOUT_SECONDS": "2",  # the dispatcher's lease is three timeouts: 6 s
    "ACCRUAL_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "0.1",
}


def statuses(stack: Stack) -> list[str]:
    with stack.db.sessions() as session:
        return list(session.scalars(select(WebhookDelivery.status)))


def test_every_subscribed_event_reaches_the_receiver_once_and_signed(
    pipeline: Stack, processes: Processes
) -> None:
    with receiving() as receiver:
        hook = subscribe(pipeline, receiver.url, ["application.submitted", "application.screened"])
        start_pipeline(processes, pipeline, **HOOK_ENV)
        submit_many(pipeline, 5)
        wait_until(
            lambda: len(receiver.received) >= 10,
            timeout=60,
            what="10 deliveries: " + processes.log("worker")[-1500:] + processes.log("beat")[-1500:],
        )
        wait_until(lambda: set(statuses(pipeline)) == {"succeeded"}, timeout=30, what="deliveries recorded")
    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == 10
    types = sorted(json.loads(r.body)["type"] for r in receiver.received)
    assert types == ["application.screened"] * 5 + ["application.submitted"] * 5
    for received in receiver.received:
        Webhook(hook["secret"]).verify(received.body, received.headers)


def test_a_worker_killed_during_a_delivery_does_not_lose_it(pipeline: Stack, processes: Processes) -> None:
    with receiving(hold=3) as receiver:  # the first request is answered only after 3 s
        subscribe(pipeline, receiver.url, ["application.submitted"])
        environment = {**pipeline.env(), **HOOK_ENV}
        worker = processes.start("worker", ["worker"], environment)
        processes.start("beat", ["beat"], environment)
        pipeline.submit(eligible_applicant("KILLED-MID-DELIVERY"))
        wait_until(
            lambda: receiver.received, timeout=60, what="the first attempt: " + processes.log("worker")
        )
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool, mid-request
        worker.wait(10)
        assert statuses(pipeline) == ["pending"]
        processes.start("worker-2", ["worker"], environment)
        wait_until(
            lambda: statuses(pipeline) == ["succeeded"],
            timeout=60,
            what="the delivery after the worker died: " + processes.log("worker-2")[-2000:],
        )
    assert len(set(receiver.ids())) == 1 and len(receiver.received) >= 2


def test_a_decision_reaches_the_coordinators_inbox_through_the_workers(
    pipeline: Stack, processes: Processes
) -> None:
    from aiosmtpd.controller import Controller

    from services.tokens import Role, create_token

    with pipeline.db.transaction() as session:
        create_token(session, Role.COORDINATOR, [pipeline.site_id], email="coordinator@beijing.example")
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = {
            "ACCRUAL_SMTP_HOST": "127.0.0.1",
            "ACCRUAL_SMTP_PORT": str(port),
            "ACCRUAL_SMTP_SECURITY": "none",
        }
        start_pipeline(processes, pipeline, **HOOK_ENV, **smtp)
        [application] = submit_many(pipeline, 1)
        wait_until(
            lambda: inbox.messages,
            timeout=60,
            what="the e-mail: " + processes.log("worker")[-1500:] + processes.log("beat")[-1500:],
        )
    finally:
        controller.stop()
    [(recipients, message)] = inbox.messages
    assert recipients == ["coordinator@beijing.example"]
    assert message["Subject"] == f"Accrual: application {application} is eligible"
