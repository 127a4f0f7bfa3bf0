"""The application routes of the access matrix: submit, list, read, correct, enrol, review, withdraw,
prescreen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from models import Allocation, Application
from tests.support.access.routes import (
    ADMIN_ONLY,
    APPLICATION_ACTION,
    APPLICATION_READ,
    COORDINATORS,
    LISTS_OF_OWN_APPLICATIONS,
    SUBMIT,
    Params,
    Route,
)
from tests.support.access.world import ADMIN, CANARY_ABI, CANARY_SCREENING_ID, COORD_IN, World, item_ids
from tests.support.applicants import eligible_applicant
from tests.support.database import status_of
from tests.support.stack import TRIAL


def _status_and_history(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        application = session.get_one(Application, params["application_id"])
        return application.status, len(application.history), dict(application.observations)


def _enrolled(world: World) -> Params:
    """A participant of the matrix's trial (which randomises), enrolled and so allocated."""
    application_id = world.fresh("eligible")
    enrolled = world.call("POST", f"/api/v1/applications/{application_id}/enroll", COORD_IN, {})
    assert enrolled.status_code == 200, enrolled.get_json()
    return {"application_id": application_id}


def _unblinded_at(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        return session.get_one(Allocation, params["application_id"]).unblinded_at


def _check_unblinded(world: World, role: str, response: Any, params: Params) -> None:
    allocation = response.get_json()["allocation"]
    assert allocation["arm_id"] and allocation["unblinded_at"]


def _submitted_count(world: World, params: Params) -> int:
    with world.stack.db.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Application)
                .where(Application.screening_id == params["screening_id"])
            )
            or 0
        )


def _check_submitted(world: World, role: str, response: Any, params: Params) -> None:
    body = response.get_json()
    assert body["status"] == "submitted" and body["site_id"] == world.site_a
    assert response.headers["Location"] == f"/api/v1/applications/{body['id']}"


def _check_listing(world: World, role: str, response: Any, params: Params) -> None:
    ids = item_ids(response)
    sites = {item["site_id"] for item in response.get_json()["items"]}
    if role == ADMIN:
        assert {world.canary, world.own_b} <= ids
    elif role == COORD_IN:
        assert world.canary in ids and world.own_b not in ids and sites == {world.site_a}
    else:
        assert ids == {world.own_b} and sites == {world.site_b}
        # Asking for the other site by name does not widen the scope.
        other = world.call("GET", f"/api/v1/applications?site_id={world.site_a}&limit=200", role)
        assert other.status_code == 200 and other.get_json()["items"] == []
        by_trial = world.call("GET", f"/api/v1/applications?trial_id={TRIAL}&limit=200", role)
        assert item_ids(by_trial) == {world.own_b}


def _check_read(world: World, role: str, response: Any, params: Params) -> None:
    body = response.get_json()
    assert body["id"] == world.canary and body["screening_id"] == CANARY_SCREENING_ID
    assert body["observations"]["abi"] == CANARY_ABI  # the canaries are really there to be leaked


def _check_status(status: str) -> Callable[[World, str, Any, Params], None]:
    def check(world: World, role: str, response: Any, params: Params) -> None:
        assert response.get_json()["status"] == status
        assert status_of(world.stack, params["application_id"]) == status

    return check


def _check_corrected(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["id"] == params["application_id"]
    with world.stack.db.sessions() as session:
        assert session.get_one(Application, params["application_id"]).observations["wagner_grade"] == 2


def _check_history(world: World, role: str, response: Any, params: Params) -> None:
    revisions = response.get_json()["revisions"]
    assert revisions[0]["action"] == "create" and revisions[-1]["state"]["id"] == params["application_id"]


def _check_prescreen(world: World, role: str, response: Any, params: Params) -> None:
    assert [result["trial_id"] for result in response.get_json()["results"]] == [TRIAL]


APPLICATION_ROUTES = [
    Route(
        "POST",
        "/api/v1/applications",
        SUBMIT,
        statuses=(202,),
        prepare=lambda w: {"screening_id": f"SCR-MATRIX-{w.next():04d}"},
        # Everyone sends to site A of the trial: the other site's coordinator may not.
        body=lambda w, role, p: {
            "trial_id": TRIAL,
            "site_id": w.site_a,
            "applicant": eligible_applicant(p["screening_id"]),
        },
        snapshot=_submitted_count,
        check=_check_submitted,
    ),
    Route("GET", "/api/v1/applications", LISTS_OF_OWN_APPLICATIONS, query="?limit=200", check=_check_listing),
    Route("GET", "/api/v1/worklist", LISTS_OF_OWN_APPLICATIONS),
    Route(
        "GET",
        "/api/v1/applications/<application_id>",
        APPLICATION_READ,
        check=_check_read,
        hides_like_missing=True,
    ),
    Route(
        "GET",
        "/api/v1/applications/<application_id>/history",
        ADMIN_ONLY,
        check=_check_history,
    ),
    Route(
        "PATCH",
        "/api/v1/applications/<application_id>",
        APPLICATION_ACTION,
        statuses=(200, 202),
        prepare=lambda w: {"application_id": w.fresh("eligible")},
        body=lambda w, role, p: {"applicant": {"wagner_grade": 2}},
        snapshot=_status_and_history,
        check=_check_corrected,
        hides_like_missing=True,
    ),
    Route(
        "POST",
        "/api/v1/applications/<application_id>/enroll",
        APPLICATION_ACTION,
        prepare=lambda w: {"application_id": w.fresh("eligible")},
        body=lambda w, role, p: {"reason": "consented"},
        snapshot=_status_and_history,
        check=_check_status("enrolled"),
        hides_like_missing=True,
    ),
    Route(
        "POST",
        "/api/v1/applications/<application_id>/review",
        APPLICATION_ACTION,
        prepare=lambda w: {"application_id": w.fresh("needs_review")},
        body=lambda w, role, p: {"decision": "eligible", "reason": "HIV test negative on file"},
        snapshot=_status_and_history,
        check=_check_status("eligible"),
        hides_like_missing=True,
    ),
    Route(
        "POST",
        "/api/v1/applications/<application_id>/dlt",
        APPLICATION_ACTION,
        statuses=(409,),  # allowed, and refused: the application was never dosed
        prepare=lambda w: {"application_id": w.fresh("eligible")},
        body=lambda w, role, p: {"dlt": False, "evaluable": True, "observed_on": "2026-12-01"},
        hides_like_missing=True,
    ),
    Route(
        "POST",
        "/api/v1/applications/<application_id>/unblind",
        ADMIN_ONLY,
        prepare=_enrolled,
        body=lambda w, role, p: {"reason": "emergency: anaphylaxis, treating physician must know"},
        snapshot=_unblinded_at,
        check=_check_unblinded,
    ),
    Route(
        "POST",
        "/api/v1/applications/<application_id>/withdraw",
        APPLICATION_ACTION,
        prepare=lambda w: {"application_id": w.fresh("submitted")},
        body=lambda w, role, p: {"reason": "moved away"},
        snapshot=_status_and_history,
        check=_check_status("withdrawn"),
        hides_like_missing=True,
    ),
    Route(
        "POST",
        "/api/v1/prescreen",
        COORDINATORS,
        body=lambda w, role, p: {
            "applicant": {k: v for k, v in eligible_applicant().items() if k != "screening_id"},
            "trial_ids": [TRIAL],
        },
        check=_check_prescreen,
    ),
]
