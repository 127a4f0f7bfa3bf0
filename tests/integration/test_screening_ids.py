"""Finding an application by its screening id, and correcting a mistyped one (issue 14, part 2), on
SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import AuditPending, Site
from services.tokens import Role, create_token
from tests.support.applicants import eligible_applicant
from tests.support.applications import patch
from tests.support.database import events
from tests.support.http import assert_problem, auth
from tests.support.screening import decide
from tests.support.stack import Stack


def search(stack: Stack, screening_id: str, token: str | None = None) -> Any:
    return stack.client.get(
        "/api/v1/applications",
        query_string={"screening_id": screening_id},
        headers=auth(token or stack.coordinator),
    )


def rename(stack: Stack, application_id: str, screening_id: str, **headers: str) -> Any:
    return stack.client.patch(
        f"/api/v1/applications/{application_id}",
        json={"screening_id": screening_id},
        headers={**auth(stack.coordinator), **headers},
    )


def test_an_application_is_found_by_its_exact_screening_id_within_the_callers_sites(stack: Stack) -> None:
    wanted, other = decide(stack, screening_id="SCR-001"), decide(stack, screening_id="SCR-0011")
    found = search(stack, "SCR-001")
    assert found.status_code == 200
    assert [item["id"] for item in found.get_json()["items"]] == [wanted]
    assert [item["id"] for item in search(stack, "SCR-0011", stack.admin).get_json()["items"]] == [other]
    assert search(stack, "scr-001").get_json()["items"] == []  # exact: screening ids are case-sensitive
    with stack.db.transaction() as session:
        elsewhere = create_token(session, Role.COORDINATOR, [_another_site(stack)])
    assert search(stack, "SCR-001", elsewhere).get_json()["items"] == []
    assert_problem(search(stack, "no spaces allowed"), 422, "screening_id")


def _another_site(stack: Stack) -> str:
    with stack.db.sessions() as session:
        return session.scalars(select(Site.site_id).where(Site.site_id != stack.site_id)).first() or ""


def test_a_mistyped_screening_id_is_corrected_audited_and_not_screened_again(stack: Stack) -> None:
    application_id = decide(stack, screening_id="SCR-O01")  # the letter O for a zero
    before = stack.client.get(f"/api/v1/applications/{application_id}", headers=auth(stack.coordinator))
    screened = len(events(stack, "application.screened"))
    corrected = rename(stack, application_id, "SCR-001", **{"If-Match": before.headers["ETag"]})
    assert corrected.status_code == 200, corrected.get_json()
    body = corrected.get_json()
    assert (body["screening_id"], body["status"]) == ("SCR-001", before.get_json()["status"])
    assert corrected.headers["ETag"] != before.headers["ETag"]
    assert len(events(stack, "application.screened")) == screened
    assert [item["id"] for item in search(stack, "SCR-001").get_json()["items"]] == [application_id]
    with stack.db.sessions() as session:
        changes = session.scalars(
            select(AuditPending.changes).where(
                AuditPending.entity == "application", AuditPending.entity_id == application_id,
                AuditPending.action == "change",
            )
        ).all()  # fmt: skip
    change = changes[-1]
    assert change["screening_id"] == "[redacted]" and change["version"][1] == change["version"][0] + 1
    # A stale ETag is refused: the correction moved the version.
    assert_problem(rename(stack, application_id, "SCR-002", **{"If-Match": before.headers["ETag"]}), 412)


def test_a_screening_id_another_application_has_is_refused_with_409_naming_it(stack: Stack) -> None:
    first, second = decide(stack, screening_id="SCR-A"), decide(stack, screening_id="SCR-B")
    refused = assert_problem(rename(stack, second, "SCR-A"), 409)
    assert refused["existing_application"] == first
    found = stack.client.get(f"/api/v1/applications/{second}", headers=auth(stack.coordinator))
    assert found.get_json()["screening_id"] == "SCR-B"


def test_observations_and_screening_id_are_corrected_together_or_the_body_is_refused(stack: Stack) -> None:
    application_id = decide(stack, screening_id="SCR-X")
    both = stack.client.patch(
        f"/api/v1/applications/{application_id}",
        json={"screening_id": "SCR-Y", "applicant": {"abi": 0.35}},
        headers=auth(stack.coordinator),
    )
    assert both.status_code == 202, both.get_json()
    assert both.get_json()["screening_id"] == "SCR-Y"
    assert_problem(
        stack.client.patch(
            f"/api/v1/applications/{application_id}", json={}, headers=auth(stack.coordinator)
        ),
        422,
    )
    assert_problem(patch(stack, application_id, {"abi": 0.4}, stack.admin), 403)
    assert stack.submit(eligible_applicant("SCR-X")).status_code == 202  # the old id is free again
