"""The sponsors' dashboard over HTTP: the same numbers as the report and a fresh count, and its guards."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from models import ApiToken, Application, Role, Site, Trial
from services.tokens import create_token
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem, auth
from tests.support.reporting import a_lifecycle, report
from tests.support.screening import screen
from tests.support.stack import TRIAL, Stack
from tests.support.tokens import sponsor_token

PAGE = f"/dashboard/trials/{TRIAL}"


def shown(html: str, testid: str) -> list[str]:
    """The text of every element marked data-testid=`testid`."""
    return re.findall(rf'data-testid="{testid}"[^>]*>([^<]*)<', html)


def sign_in(stack: Stack, token: str, next_path: str = PAGE, **headers: str) -> Any:
    return stack.client.post("/dashboard/login", data={"token": token, "next": next_path}, headers=headers)


def test_the_page_shows_the_reports_numbers_which_are_a_fresh_counts(stack: Stack) -> None:
    a_lifecycle(stack)
    token = stack.admin  # true counts: a sponsor's small ones are withheld (test_small_cells, scenario 39)
    response = stack.client.get(PAGE, headers=auth(token))
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    body = report(stack, token)
    with stack.db.sessions() as session:
        fresh = session.scalar(
            select(func.count()).select_from(Application).where(Application.trial_id == TRIAL)
        )
    assert shown(html, "applied") == [str(body["applied_count"])] == [str(fresh)] == ["7"]
    assert shown(html, "enrolled") == [str(body["counts"]["enrolled"])] == ["1"]
    assert shown(html, "target") == ["27"]
    assert shown(html, "site-applied") == ["7"] and shown(html, "site-enrolled") == ["1"]
    assert shown(html, "funnel-applied") == ["7"] and shown(html, "funnel-eligible") == ["2"]
    assert shown(html, "funnel-enrolled") == ["1"]
    assert sorted(shown(html, "failure-count")) == sorted(str(f["count"]) for f in body["screen_failures"])
    for status, count in body["counts"].items():
        assert f'data-status="{status}">{count}<' in html
    # One enrolment: the API still gives the model's date, the page withholds it and says why.
    assert body["forecast"]["projected_target_date"] is not None and shown(html, "projected") == ["—"]
    assert "too few data to project a date: 1 enrolled over 1 week(s)" in html
    assert 'data-testid="weekly-chart"' in html and 'class="band"' not in html
    for table in ("sites", "weekly", "screen-failures", "statuses", "consort"):
        assert f'href="/dashboard/trials/{TRIAL}/{table}.csv"' in html


def test_an_anonymous_browser_is_sent_to_sign_in_and_comes_back(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    first = stack.client.get(PAGE)
    assert first.status_code == 303
    assert first.headers["Location"] == f"/dashboard/login?next={PAGE}"
    form = stack.client.get(first.headers["Location"])
    assert form.status_code == 200 and 'name="token"' in form.get_data(as_text=True)
    signed = sign_in(stack, sponsor_token(stack))
    assert signed.status_code == 303 and signed.headers["Location"] == PAGE
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    assert "acr_" not in cookie  # the session names the token; it never carries it
    assert stack.client.get(PAGE).status_code == 200
    assert stack.client.get("/dashboard/").status_code == 200


def test_a_session_never_authenticates_the_api(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    assert sign_in(stack, stack.admin).status_code == 303
    assert stack.client.get(PAGE).status_code == 200
    assert_problem(stack.client.get(f"/api/v1/trials/{TRIAL}/recruitment"), 401)


def test_revoking_the_token_ends_its_session_on_the_next_request(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    token = sponsor_token(stack)
    sign_in(stack, token)
    assert stack.client.get(PAGE).status_code == 200
    with stack.db.transaction() as session:
        session.execute(
            update(ApiToken).where(ApiToken.role == "sponsor").values(revoked_at=datetime.now(UTC))
        )
    again = stack.client.get(PAGE)
    assert again.status_code == 303 and again.headers["Location"].startswith("/dashboard/login")


def test_signing_out_ends_the_session(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    sign_in(stack, stack.admin)
    out = stack.client.post("/dashboard/logout")
    assert out.status_code == 303 and out.headers["Location"] == "/dashboard/login"
    assert stack.client.get(PAGE).status_code == 303


def test_a_wrong_token_is_refused_without_a_session(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    for token in ("acr_" + "x" * 43, "not-a-token", ""):
        refused = sign_in(stack, token)
        assert refused.status_code in (400, 401)
        assert "Set-Cookie" not in refused.headers
    assert "unknown, revoked or mistyped" in sign_in(stack, "acr_nope").get_data(as_text=True)


def test_sign_in_from_another_site_is_refused(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    forged = sign_in(stack, stack.admin, Origin="https://attacker.example")
    assert forged.status_code == 403 and "Set-Cookie" not in forged.headers
    assert sign_in(stack, stack.admin, Origin="http://localhost").status_code == 303


def test_sign_in_only_redirects_within_the_dashboard(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    for target in ("https://attacker.example/", "//attacker.example/x", "/api/v1/trials", "/dashboard\\@x"):
        response = sign_in(stack, stack.admin, next_path=target)
        assert response.headers["Location"] == "/dashboard/", target


def test_only_the_trials_sponsor_and_admins_see_it(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    other = stack.client.get(PAGE, headers=auth(sponsor_token(stack, "Another Pharma")))
    assert other.status_code == 404 and "text/html" in other.content_type
    assert stack.client.get(PAGE, headers=auth(stack.coordinator)).status_code == 403
    assert stack.client.get(PAGE, headers=auth(stack.admin)).status_code == 200
    bad = stack.client.get(PAGE, headers=auth("acr_unknown"))
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"] == "Bearer"
    mine = stack.client.get("/dashboard/", headers=auth(sponsor_token(stack))).get_data(as_text=True)
    assert TRIAL in mine and "NCT03239535" not in mine  # another sponsor's trial is not listed
    everything = stack.client.get("/dashboard/", headers=auth(stack.admin)).get_data(as_text=True)
    assert TRIAL in everything and "NCT03239535" in everything


def test_every_dashboard_page_needs_a_sign_in(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    open_paths = ("/dashboard/login", "/dashboard/logout", "/dashboard/static/")
    checked = 0
    for rule in stack.app.url_map.iter_rules():
        if not rule.rule.startswith("/dashboard") or rule.rule.startswith(open_paths):
            continue
        path = rule.rule.replace("<trial_id>", TRIAL)
        for method in rule.methods - {"HEAD", "OPTIONS"}:  # type: ignore[operator]
            response = stack.client.open(path, method=method)
            assert response.status_code in (303, 401), (method, path, response.status_code)
            checked += 1
    assert checked >= 2


def test_pages_forbid_scripts_framing_and_caching(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    response = stack.client.get(PAGE, headers=auth(stack.admin))
    policy = response.headers["Content-Security-Policy"]
    assert (
        "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'none'" in policy
    )
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    with stack.client.get("/dashboard/static/dashboard.css") as css:  # closes the file it streams
        assert css.status_code == 200 and "no-store" not in css.headers.get("Cache-Control", "")


def test_registry_text_is_escaped(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    with stack.db.transaction() as session:
        session.execute(
            update(Trial).where(Trial.trial_id == TRIAL).values(title="<script>alert(1)</script>")
        )
    html = stack.client.get(PAGE, headers=auth(stack.admin)).get_data(as_text=True)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_trial_without_applicants_renders_without_a_forecast(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    response = stack.client.get(PAGE, headers=auth(stack.admin))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and shown(html, "applied") == ["0"]
    assert 'data-testid="empty-state"' in html and "Nobody has been submitted to this trial yet" in html
    assert 'data-testid="weekly-chart"' not in html and 'data-testid="forecast-chart"' not in html
    assert "too few data to project a date: 0 enrolled" in html


def test_the_index_compares_the_trials_at_a_glance(stack: Stack) -> None:
    a_lifecycle(stack)
    html = stack.client.get("/dashboard/", headers=auth(sponsor_token(stack))).get_data(as_text=True)
    assert shown(html, "trial-applied") == ["7"] and shown(html, "trial-enrolled") == ["1"]
    assert shown(html, "trial-progress") == ["1/27 (4%)"]
    everyone = stack.client.get("/dashboard/", headers=auth(stack.admin)).get_data(as_text=True)
    assert len(shown(everyone, "trial-applied")) == 4  # an admin sees every seeded trial


def test_a_coordinator_sees_their_own_sites_work_and_decisions_and_nothing_of_another_site(
    stack: Stack,
) -> None:
    a_lifecycle(stack)
    admin = auth(stack.admin)
    other = stack.client.post(f"/api/v1/trials/{TRIAL}/sites", json={"name": "Other site"}, headers=admin)
    other_site = other.get_json()["site_id"]
    with stack.db.transaction() as session:
        elsewhere = create_token(session, Role.COORDINATOR, [other_site])
    submitted = stack.client.post(
        "/api/v1/applications",
        json={"trial_id": TRIAL, "site_id": other_site, "applicant": eligible_applicant("ELSEWHERE-1")},
        headers=auth(elsewhere),
    )
    assert submitted.status_code == 202
    screen(stack, submitted.get_json()["id"])
    mine = stack.client.get("/dashboard/", headers=auth(stack.coordinator))
    assert mine.status_code == 200
    html = mine.get_data(as_text=True)
    assert shown(html, "site-applied") == ["7"] and shown(html, "site-enrolled") == ["1"]
    assert other_site not in html and "ELSEWHERE-1" not in html and submitted.get_json()["id"] not in html
    assert 'data-testid="worklist"' in html and 'data-testid="recent-decisions"' in html
    theirs = stack.client.get("/dashboard/", headers=auth(elsewhere)).get_data(as_text=True)
    assert shown(theirs, "site-applied") == ["1"] and "ELSEWHERE-1" in theirs and stack.site_id not in theirs
    # The trial's own page stays the sponsors' and admins'.
    assert stack.client.get(PAGE, headers=auth(stack.coordinator)).status_code == 403


def sponsors_consort(stack: Stack) -> str:
    """The CONSORT table as the trial's sponsor downloads it (blinded: the arms' total alone)."""
    return str(
        stack.client.get(f"{PAGE}/consort.csv", headers=auth(sponsor_token(stack))).get_data(as_text=True)
    )


def test_the_reports_tables_download_as_csv_and_formulas_are_defused(stack: Stack) -> None:
    a_lifecycle(stack)
    token = stack.admin  # true counts: a sponsor's small ones are withheld (test_small_cells, scenario 39)
    body = report(stack, token)
    sites = stack.client.get(f"{PAGE}/sites.csv", headers=auth(token))
    assert sites.status_code == 200 and sites.mimetype == "text/csv"
    assert sites.headers["Content-Disposition"] == f'attachment; filename="{TRIAL}-sites.csv"'
    rows = list(csv.reader(io.StringIO(sites.get_data(as_text=True))))
    assert rows[0] == ["site_id", "name", "status", "applied", "enrolled", "enrollment_target"]
    assert [row[3] for row in rows[1:]] == [str(site["applied_count"]) for site in body["sites"]]
    failures = list(
        csv.reader(
            io.StringIO(
                stack.client.get(f"{PAGE}/screen-failures.csv", headers=auth(token)).get_data(as_text=True)
            )
        )
    )
    assert [(row[0], int(row[2])) for row in failures[1:]] == [
        (f["criterion_id"], f["count"]) for f in body["screen_failures"]
    ]
    consort = stack.client.get(f"{PAGE}/consort.csv", headers=auth(token)).get_data(as_text=True)
    assert "assessed,,7" in consort and "allocated,all arms (blinded),1" in sponsors_consort(stack)
    with stack.db.transaction() as session:
        session.execute(
            update(Site).where(Site.site_id == stack.site_id).values(name='=HYPERLINK("http://x")')
        )
    defused = stack.client.get(f"{PAGE}/sites.csv", headers=auth(token)).get_data(as_text=True)
    assert "'=HYPERLINK" in defused
    assert stack.client.get(f"{PAGE}/nonsense.csv", headers=auth(token)).status_code == 404
    assert stack.client.get(f"{PAGE}/sites.csv", headers=auth(stack.coordinator)).status_code == 403
