"""An amendment previewed (issue 14, part 4), on SQLite and PostgreSQL: a draft run over every screened
application against the current version, answering how decisions would move and storing nothing."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import func, select

from models import AuditPending, CriteriaVersion, Event, Trial
from services.tokens import Role, create_token
from services.trials.criteria import bundled_document
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem, auth
from tests.support.screening import decide, screen
from tests.support.stack import TRIAL, Stack

PREVIEW = f"/api/v1/trials/{TRIAL}/criteria/preview"


def without_e11() -> dict[str, Any]:
    """The trial's criteria with E11 (HBsAg, HCV, syphilis, HIV) struck out."""
    document = copy.deepcopy(bundled_document("NCT06359912.criteria.yaml"))
    document["criteria"] = [c for c in document["criteria"] if c["id"] != "E11"]
    return document


def stored(stack: Stack) -> tuple[int, int, int]:
    with stack.db.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(CriteriaVersion)) or 0,
            session.scalar(select(func.count()).select_from(Event)) or 0,
            session.scalar(select(func.count()).select_from(AuditPending)) or 0,
        )


def test_a_draft_shows_how_every_decision_would_move_and_stores_nothing(stack: Stack) -> None:
    eligible = decide(stack, screening_id="OK")
    excluded = decide(stack, screening_id="HIV", hiv_positive=True)
    unknown_hiv = {k: v for k, v in eligible_applicant("UNKNOWN").items() if k != "hiv_positive"}
    review = stack.submit(unknown_hiv).get_json()["id"]
    screen(stack, review)
    before = stored(stack)
    answer = stack.client.post(PREVIEW, json=without_e11(), headers=auth(stack.admin))
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["applications_considered"] == 3 and body["current_version"] == 1
    assert body["before"] == {"eligible": 1, "ineligible": 1, "needs_review": 1, "suppressed": []}
    assert body["after"] == {"eligible": 3, "ineligible": 0, "needs_review": 0, "suppressed": []}
    assert sorted(body["changed"]) == sorted([excluded, review]) and eligible not in body["changed"]
    [site] = body["by_site"]
    assert (site["site_id"], site["after"]["eligible"]) == (stack.site_id, 3)
    e11 = next(c for c in body["by_criterion"] if c["criterion_id"] == "E11")
    assert (e11["excluded_before"], e11["excluded_after"]) == (1, 0)
    assert set(body["forecast"]) == {"projected_target_date_before", "projected_target_date_after"}
    assert stored(stack) == before  # no version, no event, no audit entry


def test_the_trials_sponsor_may_preview_others_may_not_and_a_broken_draft_is_422(stack: Stack) -> None:
    with stack.db.transaction() as session:
        sponsor_name = session.get_one(Trial, TRIAL).sponsor
        sponsor = create_token(session, Role.SPONSOR, sponsor=sponsor_name.upper())
        stranger = create_token(session, Role.SPONSOR, sponsor="Another Company")
    assert stack.client.post(PREVIEW, json=without_e11(), headers=auth(sponsor)).status_code == 200
    assert_problem(stack.client.post(PREVIEW, json=without_e11(), headers=auth(stranger)), 404)
    assert_problem(stack.client.post(PREVIEW, json=without_e11(), headers=auth(stack.coordinator)), 403)
    broken = without_e11()
    broken["criteria"][0]["rule"] = {"var": "no_such_observation", "eq": True}
    assert_problem(stack.client.post(PREVIEW, json=broken, headers=auth(stack.admin)), 422)
    elsewhere = {**without_e11(), "trial_id": "NCT03239535"}
    assert_problem(stack.client.post(PREVIEW, json=elsewhere, headers=auth(stack.admin)), 422, "trial_id")


def test_s39_a_sponsors_preview_withholds_small_counts_and_the_ids_that_would_change(stack: Stack) -> None:
    decide(stack, screening_id="SC-OK")
    decide(stack, screening_id="SC-HIV", hiv_positive=True)
    with stack.db.transaction() as session:
        sponsor = create_token(session, Role.SPONSOR, sponsor=session.get_one(Trial, TRIAL).sponsor)
    body = stack.client.post(PREVIEW, json=without_e11(), headers=auth(sponsor)).get_json()
    assert body["applications_considered"] == 2 and body["small_cell_threshold"] == 11  # the trial's total
    assert body["changed"] == [] and "changed" in body["suppressed"]
    published = [
        value
        for counts in (
            body["before"],
            body["after"],
            *(s[p] for s in body["by_site"] for p in ("before", "after")),
        )
        for key, value in counts.items()
        if key != "suppressed"
    ] + [c[k] for c in body["by_criterion"] for k in ("excluded_before", "excluded_after")]
    assert all(value is None or value == 0 or value >= 11 for value in published), published
    assert body["before"]["eligible"] is None and "eligible" in body["before"]["suppressed"]
    admin = stack.client.post(PREVIEW, json=without_e11(), headers=auth(stack.admin)).get_json()
    assert (
        admin["before"]["eligible"] == 1 and len(admin["changed"]) == 1 and admin["small_cell_threshold"] == 0
    )
