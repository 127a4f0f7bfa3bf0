"""Lost updates and stale requests (RELIABILITY.md section 7, scenarios 23, 29 and 30), on SQLite and
PostgreSQL: two corrections made from the same read never both land, and a deployment can insist that
every correction names the read it was made from (ACCRUAL_REQUIRE_IF_MATCH: 428 without If-Match) (23);
an Idempotency-Key stops standing for its first request once its TTL has passed (29); the ETag moves
when a worker decides, so a correction made from a read before the decision is refused (30)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier
from typing import Any

import time_machine

from models import Application
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem, auth
from tests.support.screening import decide, screen
from tests.support.stack import Stack


def require_if_match(stack: Stack) -> None:
    stack.app.extensions["accrual.settings"] = stack.settings.model_copy(update={"require_if_match": True})


def patch(stack: Stack, application_id: str, body: dict[str, Any], **headers: str) -> Any:
    return stack.app.test_client().patch(
        f"/api/v1/applications/{application_id}", json=body, headers={**auth(stack.coordinator), **headers}
    )


def test_s23_two_racing_patches_from_one_read_give_one_success_and_one_412(stack: Stack) -> None:
    application_id = decide(stack, screening_id="LOST-1")
    read = stack.client.get(f"/api/v1/applications/{application_id}", headers=auth(stack.coordinator))
    tag = read.headers["ETag"]
    barrier = Barrier(2)

    def correct(abi: float) -> Any:
        barrier.wait()
        return patch(stack, application_id, {"applicant": {"abi": abi}}, **{"If-Match": tag})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(correct, (0.31, 0.32)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202, 412], [answer.get_json() for answer in answers]
    won = next(answer for answer in answers if answer.status_code == 202)
    lost = next(answer for answer in answers if answer.status_code == 412)
    assert lost.get_json()["type"].endswith("/precondition-failed")
    with stack.db.sessions() as session:
        kept = session.get_one(Application, application_id).observations["abi"]
    assert kept == won.get_json()["observations"]["abi"]  # the winner's value, the loser's nowhere
    assert won.headers["ETag"] != tag


def test_a_deployment_can_require_if_match_on_every_correction(stack: Stack) -> None:
    application_id = decide(stack, screening_id="LOST-2")
    assert patch(stack, application_id, {"applicant": {"abi": 0.33}}).status_code == 202  # off by default
    require_if_match(stack)
    refused = assert_problem(patch(stack, application_id, {"applicant": {"abi": 0.34}}), 428, "If-Match")
    assert (
        refused["type"].endswith("/precondition-required") and "ETag of your last read" in refused["detail"]
    )
    with stack.db.sessions() as session:
        assert session.get_one(Application, application_id).observations["abi"] == 0.33  # nothing written
    read = stack.client.get(f"/api/v1/applications/{application_id}", headers=auth(stack.coordinator))
    accepted = patch(
        stack, application_id, {"applicant": {"abi": 0.34}}, **{"If-Match": read.headers["ETag"]}
    )
    assert accepted.status_code == 202, accepted.get_json()
    stale = patch(stack, application_id, {"applicant": {"abi": 0.35}}, **{"If-Match": read.headers["ETag"]})
    assert_problem(stale, 412)


def test_s30_the_etag_moves_when_a_worker_decides_and_a_correction_from_before_is_refused(
    stack: Stack,
) -> None:
    submitted = stack.submit(eligible_applicant("ETAG-WORKER"))
    application_id = submitted.get_json()["id"]
    before = stack.client.get(f"/api/v1/applications/{application_id}", headers=auth(stack.coordinator))
    assert before.get_json()["status"] == "submitted"
    screen(stack, application_id)  # the worker's decision, as the screening task makes it
    after = stack.client.get(f"/api/v1/applications/{application_id}", headers=auth(stack.coordinator))
    assert after.get_json()["status"] == "eligible" and after.headers["ETag"] != before.headers["ETag"]
    stale = patch(stack, application_id, {"applicant": {"abi": 0.36}}, **{"If-Match": before.headers["ETag"]})
    assert_problem(stale, 412)
    with stack.db.sessions() as session:
        assert session.get_one(Application, application_id).observations["abi"] != 0.36


def test_s29_an_idempotency_key_expires_after_its_ttl_and_is_then_a_new_request(stack: Stack) -> None:
    key = {"Idempotency-Key": "s29-key"}
    first = stack.submit(eligible_applicant("IDEM-1"), **key)
    assert first.status_code == 202
    reused = stack.submit(eligible_applicant("IDEM-2"), **key)
    assert_problem(reused, 422)  # within the TTL: another body under the same key is refused
    ttl = timedelta(hours=stack.settings.idempotency_ttl_hours)
    with time_machine.travel(datetime.now(UTC) + ttl + timedelta(minutes=1)):
        later = stack.submit(eligible_applicant("IDEM-2"), **key)
        assert later.status_code == 202 and "Idempotent-Replayed" not in later.headers
        assert later.get_json()["id"] != first.get_json()["id"]
        replay = stack.submit(eligible_applicant("IDEM-2"), **key)  # the key now stands for the new one
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.get_json()["id"] == later.get_json()["id"]
