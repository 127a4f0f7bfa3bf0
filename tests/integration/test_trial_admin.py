"""An admin's changes to trials and sites, and the public summary, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Site, Trial
from tests.support.applicants import eligible_applicant
from tests.support.applications import post
from tests.support.database import events, set_targets
from tests.support.http import assert_problem
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack


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


# --- the registry's rule: the trial reports RECRUITING while, and only while, a site recruits ------


def statuses(stack: Stack) -> tuple[str, dict[str, str]]:
    with stack.db.sessions() as session:
        trial = session.get_one(Trial, TRIAL)
        sites = {s.name: s.status for s in session.scalars(select(Site).where(Site.trial_id == TRIAL))}
        return trial.overall_status, sites


def assert_registry_rule(stack: Stack) -> None:
    trial, sites = statuses(stack)
    assert (trial == "RECRUITING") == ("RECRUITING" in sites.values()), (trial, sites)


def add_second_site(stack: Stack, **fields: Any) -> str:
    created = stack.client.post(
        f"/api/v1/trials/{TRIAL}/sites",
        json={"name": "Shanghai site", **fields},
        headers={"Authorization": f"Bearer {stack.admin}"},
    )
    assert created.status_code == 201, created.get_json()
    return str(created.get_json()["site_id"])


def site_path(stack: Stack, site_id: str | None = None) -> str:
    return f"/api/v1/trials/{TRIAL}/sites/{site_id or stack.site_id}"


def test_closing_the_last_recruiting_site_closes_the_trial_and_reopening_it_reopens_the_trial(
    stack: Stack,
) -> None:
    second = add_second_site(stack)
    patch(stack, site_path(stack), {"status": "ACTIVE_NOT_RECRUITING"})
    assert statuses(stack)[0] == "RECRUITING"  # Shanghai still recruits
    patch(stack, site_path(stack, second), {"status": "SUSPENDED"})
    assert statuses(stack)[0] == "ACTIVE_NOT_RECRUITING"
    assert events(stack, "trial.status_changed")[-1]["reason"] == "no_site_recruiting"
    assert_problem(stack.submit(eligible_applicant("X")), 409)
    patch(stack, site_path(stack), {"status": "RECRUITING"})
    assert statuses(stack) == (
        "RECRUITING", {"Beijing site (contact: Hui Shi)": "RECRUITING", "Shanghai site": "SUSPENDED"}
    )  # fmt: skip
    assert events(stack, "trial.status_changed")[-1]["reason"] == "site_recruiting"
    assert stack.submit(eligible_applicant("Y")).status_code == 202


def test_a_trial_that_stops_recruiting_closes_its_sites_and_reopens_those_that_closed_with_it(
    stack: Stack,
) -> None:
    second = add_second_site(stack)
    patch(stack, site_path(stack, second), {"status": "NOT_YET_RECRUITING"})
    patch(stack, f"/api/v1/trials/{TRIAL}", {"overall_status": "SUSPENDED"})
    trial, sites = statuses(stack)
    assert trial == "SUSPENDED" and sites["Beijing site (contact: Hui Shi)"] == "SUSPENDED"
    assert sites["Shanghai site"] == "NOT_YET_RECRUITING"  # was not recruiting: left alone
    assert events(stack, "site.status_changed")[-1]["reason"] == "trial_changed_by_admin"
    reopened = patch(stack, f"/api/v1/trials/{TRIAL}", {"overall_status": "RECRUITING"})
    assert reopened.status_code == 200
    assert statuses(stack)[1] == {
        "Beijing site (contact: Hui Shi)": "RECRUITING", "Shanghai site": "NOT_YET_RECRUITING"
    }  # fmt: skip
    assert_registry_rule(stack)


def test_no_site_recruits_in_a_halted_or_full_trial(stack: Stack) -> None:
    patch(stack, f"/api/v1/trials/{TRIAL}", {"overall_status": "SUSPENDED"})
    problem = assert_problem(patch(stack, site_path(stack), {"status": "RECRUITING"}), 422, "status")
    assert "SUSPENDED" in problem["detail"]
    assert_problem(
        stack.client.post(
            f"/api/v1/trials/{TRIAL}/sites",
            json={"name": "Shanghai site"},
            headers={"Authorization": f"Bearer {stack.admin}"},
        ),
        422,
        "status",
    )
    assert statuses(stack)[1] == {"Beijing site (contact: Hui Shi)": "SUSPENDED"}  # nothing half-written
    patch(stack, f"/api/v1/trials/{TRIAL}", {"overall_status": "RECRUITING"})
    set_targets(stack, trial=1, site=None)
    post(stack, decide(stack, screening_id="A"), "enroll")
    assert statuses(stack) == (
        "ACTIVE_NOT_RECRUITING",
        {"Beijing site (contact: Hui Shi)": "ACTIVE_NOT_RECRUITING"},
    )
    assert events(stack, "site.status_changed")[-1]["reason"] == "trial_target_reached"
    assert_problem(patch(stack, site_path(stack), {"status": "RECRUITING"}), 422, "status")


def test_a_sites_own_target_closes_the_trial_only_when_no_other_site_recruits(stack: Stack) -> None:
    set_targets(stack, trial=None, site=1)
    second = add_second_site(stack)
    post(stack, decide(stack, screening_id="A"), "enroll")
    assert statuses(stack)[0] == "RECRUITING"
    patch(stack, site_path(stack, second), {"status": "SUSPENDED"})
    assert statuses(stack)[0] == "ACTIVE_NOT_RECRUITING"
    explicit = patch(stack, f"/api/v1/trials/{TRIAL}", {"overall_status": "RECRUITING"})
    detail = assert_problem(explicit, 422, "overall_status")["detail"]
    assert "none of the trial's sites can recruit" in detail  # Beijing is full, Shanghai suspended
    patch(stack, site_path(stack), {"enrollment_target": 2})  # room at Beijing again
    assert statuses(stack) == (
        "RECRUITING", {"Beijing site (contact: Hui Shi)": "RECRUITING", "Shanghai site": "SUSPENDED"}
    )  # fmt: skip


def test_a_raised_trial_target_waits_for_a_site_with_room(stack: Stack) -> None:
    set_targets(stack, trial=1, site=1)
    post(stack, decide(stack, screening_id="A"), "enroll")
    assert statuses(stack)[0] == "ACTIVE_NOT_RECRUITING"
    raised = patch(stack, f"/api/v1/trials/{TRIAL}", {"enrollment_target": 5})
    assert raised.status_code == 200
    assert (raised.get_json()["enrollment_target"], raised.get_json()["overall_status"]) == (
        5, "ACTIVE_NOT_RECRUITING"
    )  # fmt: skip
    patch(stack, site_path(stack), {"enrollment_target": 3})
    assert statuses(stack) == ("RECRUITING", {"Beijing site (contact: Hui Shi)": "RECRUITING"})
    assert_registry_rule(stack)
