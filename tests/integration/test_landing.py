"""Where a person who opens the service's address is led (issue 16): `GET /` to the dashboard and the
documentation, and the documentation page readable before (or without) its script."""

from __future__ import annotations

from tests.support.stack import Stack


def test_the_root_leads_a_person_to_the_dashboard_and_the_docs(stack: Stack) -> None:
    page = stack.client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'href="/dashboard/"' in html and 'href="/docs"' in html and 'href="/openapi.json"' in html
    for link in ("/dashboard/", "/docs", "/openapi.json"):
        assert stack.client.get(link, follow_redirects=True).status_code == 200, link


def test_the_root_answers_a_program_with_the_same_links_as_json(stack: Stack) -> None:
    answer = stack.client.get("/", headers={"Accept": "application/json"})
    assert answer.status_code == 200
    assert answer.get_json() == {
        "dashboard": "/dashboard/",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "health": "/healthz",
    }


def test_the_docs_page_names_the_plain_document_before_its_script_runs(stack: Stack) -> None:
    page = stack.client.get("/docs/swagger")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # Inside the element Swagger UI replaces: shown until it renders, and for ever without JavaScript.
    start = html.index('<div id="swagger-ui">')
    assert 'href="/openapi.json"' in html[start : html.index("</div>", start)]
