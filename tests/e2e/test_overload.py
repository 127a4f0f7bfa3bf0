"""Intake under overload: more concurrent clients than the API has threads. The answers degrade to 503
`overloaded` (or 429) with Retry-After, never to a 500, a lost or a half-written application; clients
that retry with their Idempotency-Key all get in, each exactly once."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models import Application, Event
from tests.support.applicants import eligible_applicant
from tests.support.processes import Processes, start_api
from tests.support.servers import free_port
from tests.support.stack import TRIAL, Stack, make_settings

pytestmark = pytest.mark.slow
CLIENTS = 40


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Any
    body: Any


def post(url: str, body: Any, headers: dict[str, str]) -> Answer:
    """urllib, not httpx: a client per request would spend more CPU on TLS set-up than the server on
    the request, on a two-core machine shared with the server."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.headers, json.loads(response.read()))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, json.loads(error.read() or b"null"))


def test_overload_is_shed_with_retry_after_and_every_retried_submission_is_stored_once(
    pg_url: str, tmp_path: Path, processes: Processes
) -> None:
    stack = Stack(make_settings(tmp_path, pg_url))
    try:
        environment = {
            **stack.env(),
            "ACCRUAL_API_WORKERS": "1",
            "ACCRUAL_API_THREADS": "2",
            "ACCRUAL_API_MAX_QUEUE_SECONDS": "0.05",  # tiny, so 40 clients on 2 threads must queue past it
            "ACCRUAL_RATE_LIMIT_INTAKE_PER_TOKEN": "100000/minute",
            "ACCRUAL_RATE_LIMIT_INTAKE_PER_ADDRESS": "100000/minute",
        }
        base = start_api(processes, environment, free_port())
        start = threading.Barrier(CLIENTS)
        refusals: list[Answer] = []

        def client(n: int) -> str:
            key = uuid.uuid4().hex
            body = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant(f"LOAD-{n}")}
            headers = {"Authorization": f"Bearer {stack.coordinator}", "Idempotency-Key": key}
            start.wait(30)
            for _ in range(200):
                response = post(f"{base}/api/v1/applications", body, headers)
                if response.status == 202:
                    return str(response.body["id"])
                refusals.append(response)
                time.sleep(0.05 + 0.01 * (n % 10))  # a test's patience, not Retry-After's whole seconds
            raise AssertionError(f"client {n} never got in")

        with ThreadPoolExecutor(CLIENTS) as pool:
            accepted = list(pool.map(client, range(CLIENTS)))

        assert refusals, "the load never exceeded the server: nothing was shed"
        for response in refusals:
            assert response.status in (429, 503), response.body
            assert response.headers["Content-Type"] == "application/problem+json"
            assert int(response.headers["Retry-After"]) >= 1
        assert any(r.body["type"].endswith("/overloaded") for r in refusals)
        assert len(set(accepted)) == CLIENTS
        with stack.db.sessions() as session:
            stored = set(session.scalars(select(Application.id)).all())
            submitted_events = session.scalar(
                select(func.count()).select_from(Event).where(Event.type == "application.submitted")
            )
        assert stored == set(accepted)  # nothing lost, nothing extra from a shed or retried request
        assert submitted_events == CLIENTS  # and each with its event: nothing half-written
        assert "Traceback" not in processes.log("api")
    finally:
        stack.close()
