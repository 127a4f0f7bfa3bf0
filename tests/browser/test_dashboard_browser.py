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
    assert text("funnel-applied") == "7" and text("funnel-eligible") == "2" and text("funnel-enrolled") == "1"
    assert page.get_by_test_id("failure-count").count() == len(expected["screen_failures"])
    assert text("projected") == expected["forecast"]["projected_target_date"]
    consort = expected["consort"]
    assert text("consort-assessed-count") == str(consort["assessed"]) == "7"
    assert text("consort-enrolled-count") == str(consort["enrolled"])
    excluded = consort["excluded"]
    assert text("consort-excluded-count") == str(
        excluded["ineligible"] + sum(reason["count"] for reason in excluded["not_enrolled"])
    )
    # The trial randomises; a sponsor is blinded: the allocated total, never per arm.
    assert "all arms (blinded): 1" in text("consort-allocated") and "clinical-standard" not in text(
        "consort-allocated"
    )
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
