"""An admin's changes to trials and sites, and the public summary, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.conftest import TRIAL, Stack, eligible_applicant
from tests.integration.test_amendments import decide
from tests.integration.test_intake_api import assert_problem
from tests.integration.test_lifecycle import events, post, set_targets


def patch(stack: Stack, path: str, body: dict[str, Any], token: str | None = None) -> Any:
    return stack.client.patch(path, json=body, headers={"Authorization": f"Bearer {token or stack.admin}"})


def test_an_admin_changes_a_trials_status_with_its_event(stack: Stack) -> None:
    response = patch(stack, f"/api/v1/trials/{TRIAL}", {"overall_status": "SUSPENDED"})
    assert response.status_code == 200 and response.get_json()["overall_status"] == "SUSPENDED"
    assert events(stack, "trial.status_changed")[0]["to"] == "SUSPENDED"
    assert_problem(stack.submit(eligible_applicant()), 409)
    assert_problem(
        patch(stack, f"/api/v1/trials/{TRIAL}", {"overall_status": "PAUSED"}), 422, "overall_status"
    )
    assert_problem(
        patch(stack, f"/api/v1/trials/{TRIAL}", {"overall_status": "RECRUITING"}, stack.coordinator), 403
    )


def test_a_target_cannot_go_below_what_is_enrolled(stack: Stack) -> None:
    post(stack, decide(stack, screening_id="A"), "enroll")
    post(stack, decide(stack, screening_id="B"), "enroll")
    assert_problem(patch(stack, f"/api/v1/trials/{TRIAL}", {"enrollment_target": 1}), 409)
    closed = patch(stack, f"/api/v1/trials/{TRIAL}", {"enrollment_target": 2})
    assert closed.status_code == 200 and closed.get_json()["overall_status"] == "ACTIVE_NOT_RECRUITING"
    assert_problem(
        patch(stack, f"/api/v1/trials/{TRIAL}", {"overall_status": "RECRUITING"}), 422, "overall_status"
    )


def test_raising_a_reached_target_reopens_recruitment(stack: Stack) -> None:
    set_targets(stack, trial=1, site=None)
    first, waiting = decide(stack, screening_id="A"), decide(stack, screening_id="B")
    post(stack, first, "enroll")
    assert_problem(post(stack, waiting, "enroll"), 409)
    reopened = patch(stack, f"/api/v1/trials/{TRIAL}", {"enrollment_target": 2}).get_json()
    assert (reopened["overall_status"], reopened["enrollment_target"]) == ("RECRUITING", 2)
    assert events(stack, "trial.status_changed")[-1]["to"] == "RECRUITING"
    assert post(stack, waiting, "enroll").status_code == 200


def test_sites_are_added_and_changed_by_admins(stack: Stack) -> None:
    created = stack.client.post(
        f"/api/v1/trials/{TRIAL}/sites",
        json={"name": "Shanghai site", "city": "Shanghai", "country": "China", "enrollment_target": 5},
        headers={"Authorization": f"Bearer {stack.admin}"},
    )
    assert created.status_code == 201
    site = created.get_json()
    assert (site["status"], site["enrollment_target"], site["applied_count"]) == ("RECRUITING", 5, 0)
    duplicate = stack.client.post(
        f"/api/v1/trials/{TRIAL}/sites",
        json={"name": "Shanghai site"},
        headers={"Authorization": f"Bearer {stack.admin}"},
    )
    assert_problem(duplicate, 409)
    changed = patch(
        stack,
        f"/api/v1/trials/{TRIAL}/sites/{site['site_id']}",
        {"status": "SUSPENDED", "enrollment_target": None},
    )
    assert (changed.get_json()["status"], changed.get_json()["enrollment_target"]) == ("SUSPENDED", None)
    assert [e["to"] for e in events(stack, "site.status_changed")] == ["RECRUITING", "SUSPENDED"]
    assert_problem(patch(stack, f"/api/v1/trials/{TRIAL}/sites/site_nope", {"status": "RECRUITING"}), 404)


def test_the_public_summary_needs_no_token_and_tells_nothing_about_applicants(stack: Stack) -> None:
    stack.submit(eligible_applicant("PUBLIC-CANARY"))
    response = stack.client.get(f"/api/v1/public/trials/{TRIAL.lower()}")
    assert response.status_code == 200
    body = response.get_json()
    assert body == {
        "trial_id": TRIAL,
        "title": body["title"],
        "conditions": ["Critical Limb Ischemia"],
        "overall_status": "RECRUITING",
        "cities": ["Beijing"],
        "applied_count": 1,
    }
    assert "CANARY" not in response.get_data(as_text=True)
    assert_problem(stack.client.get("/api/v1/public/trials/NCT00000000"), 404)
