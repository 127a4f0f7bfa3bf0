"""The dashboard in a real headless Chromium, driven by Playwright: signs in, loads without a console
error or a failed request, shows the fixture trial's counts, and leaves a screenshot as an artefact."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.support.reporting import a_lifecycle, report
from tests.support.servers import unavailable
from tests.support.stack import TRIAL, Stack
from tests.support.tokens import sponsor_token

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ACCRUAL_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("ACCRUAL_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
# Headless in a container: no sandbox (no user namespaces), no GPU, no calls home.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
]


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        unavailable(f"Chromium at {CHROMIUM} (apt-get install chromium, or set ACCRUAL_TEST_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def served(sqlite_stack: Stack) -> Iterator[tuple[Stack, str]]:
    """The app on a loopback port, served by werkzeug from a thread."""
    server = make_server("127.0.0.1", 0, sqlite_stack.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sqlite_stack, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def test_a_sponsor_signs_in_and_sees_the_trials_figures(chromium: Any, served: tuple[Stack, str]) -> None:
    stack, base = served
    a_lifecycle(stack)
    token = sponsor_token(stack)
    expected = report(stack, token)

    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    page.goto(f"{base}/dashboard/trials/{TRIAL}")
    assert page.url == f"{base}/dashboard/login?next=/dashboard/trials/{TRIAL}"
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard/trials/{TRIAL}")

    def text(testid: str) -> str:
        return str(page.get_by_test_id(testid).first.text_content()).strip()

    assert text("applied") == str(expected["applied_count"]) == "7"
    assert text("enrolled") == str(expected["counts"]["enrolled"]) == "1"
    assert text("target") == "27"
    # 2 eligible is a small count, withheld from a sponsor (scenario 39); the trial's totals are shown.
    assert text("funnel-applied") == "7" and text("funnel-eligible") == "withheld"
    assert text("funnel-enrolled") == "1"
    assert page.get_by_test_id("failure-count").count() == len(expected["screen_failures"])
    # One enrolment on one day: the page withholds the model's date and says why.
    assert text("projected") == "—" and "too few data" in text("projection-withheld")
    consort = expected["consort"]
    assert text("consort-assessed-count") == str(consort["assessed"]) == "7"
    assert text("consort-enrolled-count") == str(consort["enrolled"])
    excluded = consort["excluded"]
    assert excluded["ineligible"] is None  # withheld, yet the excluded are the assessed less the enrolled
    assert text("consort-excluded-count") == str(consort["assessed"] - consort["enrolled"])
    # The trial randomises; a sponsor is blinded: the allocated total, never per arm.
    assert "all arms (blinded): 1" in text("consort-allocated") and "clinical-standard" not in text(
        "consort-allocated"
    )
    page.emulate_media(media="print")  # prints as a report: no navigation, no export links
    assert page.evaluate("getComputedStyle(document.querySelector('.bar')).display") == "none"
    assert page.evaluate("getComputedStyle(document.querySelector('.exports')).display") == "none"
    page.emulate_media(media="screen")
    for chart in ("weekly-chart", "forecast-chart", "funnel", "consort"):
        box = page.get_by_test_id(chart).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 50, chart
    assert page.locator("link[rel=stylesheet]").count() == 1
    background = page.evaluate("getComputedStyle(document.querySelector('.bar')).backgroundColor")
    assert background == "rgb(31, 95, 139)"  # the stylesheet loaded under the page's CSP

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"dashboard-{TRIAL}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    page.click("text=Sign out")
    page.wait_for_url(f"{base}/dashboard/login")
    assert problems == []


def signed_in_page(chromium: Any, base: str, token: str, path: str) -> tuple[Any, list[str]]:
    """A new page signed in with `token` at `path`, recording every console error and failed request."""
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{base}/dashboard/login?next={path}")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")
    return page, problems


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_the_index_the_empty_state_and_the_coordinators_view(
    chromium: Any, served: tuple[Stack, str]
) -> None:
    stack, base = served
    a_lifecycle(stack)

    page, problems = signed_in_page(chromium, base, stack.admin, "/dashboard/")
    row = page.locator(f"tr[data-trial='{TRIAL}']")
    assert row.get_by_test_id("trial-applied").text_content() == "7"
    assert row.get_by_test_id("trial-enrolled").text_content() == "1"
    assert row.get_by_test_id("trial-progress").text_content() == "1/27 (4%)"
    screenshot(page, "index")
    page.goto(f"{base}/dashboard/trials/NL003-CLI-III-2")  # nobody applied there
    assert "Nobody has been submitted to this trial yet" in str(
        page.get_by_test_id("empty-state").text_content()
    )
    screenshot(page, "empty-trial")
    assert problems == []

    coordinator, problems = signed_in_page(chromium, base, stack.coordinator, "/dashboard/")
    sites = coordinator.get_by_test_id("coordinator-sites")
    assert sites.locator("tbody tr").count() == 1
    assert (
        coordinator.locator(f"tr[data-site='{stack.site_id}']").get_by_test_id("site-applied").text_content()
        == "7"
    )
    assert coordinator.get_by_test_id("recent-decisions").locator("tbody tr").count() >= 1
    screenshot(coordinator, "coordinator")
    assert problems == []
