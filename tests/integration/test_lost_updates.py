"""Lost updates (RELIABILITY.md section 7, scenario 23; 21 CFR 11.10(e)): two corrections made from the
same read never both land, and a deployment can insist that every correction names the read it was made
from (ACCRUAL_REQUIRE_IF_MATCH: 428 without If-Match). On SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

from models import Application
from tests.support.http import assert_problem, auth
from tests.support.screening import decide
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
