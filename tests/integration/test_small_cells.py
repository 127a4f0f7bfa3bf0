"""Scenario 39 over real HTTP (`accrual api` processes) on SQLite and PostgreSQL: small-cell suppression.

A trial with two sites, 3 applicants at one and 14 at the other (17 in all). A sponsor under the
default threshold (11) sees neither site's count (the 3 is small; the 14 would be the total less it),
nor any other count from 1 to 10 below the trial level, in the report, the site list or the CSV; the
public summary holds the trial's total alone; an admin sees the true counts. An API started with
`ACCRUAL_SMALL_CELL_THRESHOLD=0` shows the sponsor the true counts, and the audit trail records each
threshold as it comes into force. The property-based half is tests/unit/test_small_cells.py.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

from services.reporting.small_cells import last_recorded_threshold
from services.tokens import Role, create_token
from tests.support.applicants import eligible_applicant
from tests.support.http import auth
from tests.support.processes import Processes, start_api
from tests.support.servers import free_port
from tests.support.stack import TRIAL, Stack
from tests.support.tokens import sponsor_token


def _get(base: str, path: str, token: str | None = None) -> Any:
    request = urllib.request.Request(base + path, headers=auth(token) if token else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read().decode()
    return json.loads(body) if path.startswith("/api/") else body


def _two_sites(stack: Stack) -> tuple[str, str]:
    """The seeded site with 3 applicants and a new one with 14."""
    created = stack.client.post(
        f"/api/v1/trials/{TRIAL}/sites", json={"name": "Zhongshan Hospital"}, headers=auth(stack.admin)
    )
    other = created.get_json()["site_id"]
    with stack.db.transaction() as session:
        both = create_token(session, Role.COORDINATOR, [stack.site_id, other])
    for n, site_id in enumerate([stack.site_id] * 3 + [other] * 14):
        response = stack.client.post(
            "/api/v1/applications",
            json={"trial_id": TRIAL, "site_id": site_id, "applicant": eligible_applicant(f"S39-{n:02}")},
            headers=auth(both),
        )
        assert response.status_code == 202, response.get_json()
    return stack.site_id, other


def _counts_below_trial_level(report: dict[str, Any]) -> Iterator[int | None]:
    """Every count of a report below the trial level (not its applied and enrolled totals)."""
    yield from (n for status, n in report["counts"].items() if status != "enrolled")
    for site in report["sites"]:
        yield from (site["applied_count"], site["enrolled_count"])
    for week in report["weekly"]:
        yield from (week["applied"], week["enrolled"])
    yield from (f["count"] for f in report["screen_failures"])
    yield report["withdrawn_after_enrolment"]
    consort = report["consort"]
    yield consort["excluded"]["ineligible"]
    yield from (r["count"] for r in consort["excluded"]["reasons"] + consort["excluded"]["not_enrolled"])


def test_s39_sponsors_and_the_public_see_no_count_from_1_to_10_below_the_trial_level_and_admins_see_all(
    stack: Stack, processes: Processes
) -> None:
    small, large = _two_sites(stack)
    sponsor = sponsor_token(stack)
    base = start_api(processes, stack.env(), free_port())

    report = _get(base, f"/api/v1/trials/{TRIAL}/recruitment", sponsor)
    assert report["small_cell_threshold"] == 11 and report["applied_count"] == 17
    assert not [n for n in _counts_below_trial_level(report) if n is not None and 0 < n < 11]
    by_site = {s["site_id"]: s for s in report["sites"]}
    assert by_site[small]["applied_count"] is None and by_site[small]["suppressed"] == ["applied_count"]
    assert by_site[large]["applied_count"] is None  # 17 - 3: the complement
    assert by_site[small]["enrolled_count"] == 0  # 0 is shown as 0
    sites = _get(base, f"/api/v1/trials/{TRIAL}/sites", sponsor)["items"]
    assert [(s["applied_count"], s["suppressed"]) for s in sites] == [(None, ["applied_count"])] * 2
    csv_rows = _get(base, f"/dashboard/trials/{TRIAL}/sites.csv", sponsor).splitlines()[1:]
    assert [row.split(",")[3] for row in csv_rows] == ["", ""]
    page = _get(base, f"/dashboard/trials/{TRIAL}", sponsor)
    assert 'data-testid="site-applied">withheld<' in page and 'data-testid="site-applied">3<' not in page

    public = _get(base, f"/api/v1/public/trials/{TRIAL}")
    assert public["applied_count"] == 17 and "sites" not in public  # nothing below the trial level

    truth = _get(base, f"/api/v1/trials/{TRIAL}/recruitment", stack.admin)
    assert truth["small_cell_threshold"] == 0 and truth["suppressed"] == []
    assert {s["site_id"]: s["applied_count"] for s in truth["sites"]} == {small: 3, large: 14}
    with stack.db.reading() as session:
        assert last_recorded_threshold(session) == 11


def test_s39_threshold_0_turns_suppression_off_for_sponsors_and_the_change_is_audited(
    stack: Stack, processes: Processes
) -> None:
    small, large = _two_sites(stack)
    sponsor = sponsor_token(stack)
    default = start_api(processes, stack.env(), free_port(), name="api-11")
    assert _get(default, f"/api/v1/trials/{TRIAL}/sites", sponsor)["items"][0]["applied_count"] is None
    off = start_api(
        processes, {**stack.env(), "ACCRUAL_SMALL_CELL_THRESHOLD": "0"}, free_port(), name="api-0"
    )
    report = _get(off, f"/api/v1/trials/{TRIAL}/recruitment", sponsor)
    assert report["small_cell_threshold"] == 0 and report["suppressed"] == []
    assert {s["site_id"]: s["applied_count"] for s in report["sites"]} == {small: 3, large: 14}
    with stack.db.reading() as session:
        assert last_recorded_threshold(session) == 0  # 11 was recorded first, then the change to 0
