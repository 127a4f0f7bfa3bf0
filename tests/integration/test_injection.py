"""Scenario 41 of RELIABILITY.md §7: injection through filters, cursors, headers, webhook URLs and log
lines is neutralised, on SQLite and on PostgreSQL.

- SQL: every filter, cursor and page parameter of the list routes, and the ids in their paths, get
  classic payloads; the answer is a 4xx problem or a harmless empty page, never a 500, and the tables
  hold what they held. The lists have no sort parameter (each has one fixed order), so "sort fields
  allow-listed" is tested as its equivalent: `sort` is an unknown parameter, refused with 422.
- CRLF: an `Idempotency-Key` holding a line break is refused (400) and stores nothing; an `X-Request-Id`
  holding one is not taken (the answer carries a new id of its own, no header is added); a webhook URL
  holding one is refused (422 naming `url`), nothing subscribed. A raw CR or LF cannot cross HTTP/1.1
  inside a header, so these headers are given to the app as a proxy would pass them (the WSGI environ).
- Log lines: over real HTTP, a path whose decoded form holds a line break that would start a forged
  record reaches gunicorn's access line as one line (services/log_lines.py escapes it); so do a site
  name and a withdrawal reason holding line breaks.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from models import Role
from services.tokens import create_token
from tests.support.applications import post
from tests.support.database import stored
from tests.support.http import assert_problem, auth
from tests.support.processes import LOG_COMPLETE_GRACE_SECONDS, Processes, start_api
from tests.support.screening import decide
from tests.support.servers import free_port
from tests.support.stack import TRIAL, Stack

SQL_PAYLOADS = (
    "' OR 1=1--",
    "1;DROP TABLE applications",
    "x' UNION SELECT token_hash, token_hash FROM api_tokens--",
    '" OR ""="',
    "%' OR '%'='",
    "1) OR (1=1",
    "applications; DELETE FROM events; --",
)
# Each list route, the parameters it takes (and `sort`, which none takes), and the roles that read it.
LIST_PARAMETERS = {
    "/api/v1/applications": (
        ("trial_id", "site_id", "status", "screening_id", "cursor", "limit", "sort"),
        (Role.ADMIN, Role.COORDINATOR),
    ),
    "/api/v1/events": (("after", "limit", "sort"), (Role.ADMIN, Role.SPONSOR)),
    "/api/v1/audit": (("entity", "id", "after", "limit", "sort"), (Role.ADMIN,)),
    "/api/v1/worklist": (("trial_id", "site_id", "sort"), (Role.ADMIN, Role.COORDINATOR)),
}
PATHS_WITH_IDS = (
    "/api/v1/applications/{}",
    "/api/v1/trials/{}",
    "/api/v1/trials/{}/sites",
    "/api/v1/webhooks/{}",
)
HARMLESS = (200, 400, 404, 422)
SPONSOR = "Allife Medical Science and Technology Co., Ltd."  # the seeded trial's sponsor
FORGED = "2026-12-07 00:00:00,000 ERROR services FORGED-LINE"


def sponsor_token(stack: Stack) -> str:
    with stack.db.transaction() as session:
        return create_token(session, Role.SPONSOR, sponsor=SPONSOR)


def assert_harmless(response: Any, where: str) -> None:
    """A 4xx problem, or 200 with nothing in it: the payload matched no row."""
    assert response.status_code in HARMLESS, (
        f"{where}: {response.status_code} {response.get_data(as_text=True)}"
    )
    if response.status_code == 200:
        assert response.get_json()["items"] == [], f"{where} matched rows: {response.get_json()}"
    else:
        assert_problem(response, response.status_code)


def test_s41_sql_payloads_in_every_list_parameter_and_path_id_are_refused_or_match_nothing(
    stack: Stack,
) -> None:
    application_id = decide(stack, screening_id="INJECTION")
    tokens = {
        Role.ADMIN: stack.admin,
        Role.COORDINATOR: stack.coordinator,
        Role.SPONSOR: sponsor_token(stack),
    }
    before = stored(stack)
    for path, (parameters, roles) in LIST_PARAMETERS.items():
        for role, parameter, payload in itertools.product(roles, parameters, SQL_PAYLOADS):
            answer = stack.client.get(path, query_string={parameter: payload}, headers=auth(tokens[role]))
            assert_harmless(answer, f"{role} {path}?{parameter}={payload}")
    for token in (stack.admin, stack.coordinator):
        for path in PATHS_WITH_IDS:
            for payload in SQL_PAYLOADS:
                answer = stack.client.get(path.format(payload), headers=auth(token))
                assert answer.status_code in HARMLESS, f"{path} {payload}: {answer.status_code}"
    assert stored(stack) == before  # applications, their history and the events: all still there
    read = stack.client.get(f"/api/v1/applications/{application_id}", headers=auth(stack.coordinator))
    assert read.status_code == 200 and read.get_json()["status"] == "eligible"
    listed = stack.client.get("/api/v1/applications", headers=auth(stack.admin)).get_json()["items"]
    assert [a["id"] for a in listed] == [application_id]


def test_s41_a_line_break_in_a_header_or_a_webhook_url_is_refused(stack: Stack) -> None:
    from tests.support.applicants import eligible_applicant

    before = stored(stack)
    refused = stack.client.post(
        "/api/v1/applications",
        json={"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant("CRLF")},
        headers=auth(stack.coordinator),
        environ_overrides={"HTTP_IDEMPOTENCY_KEY": "key\r\nX-Injected: 1"},
    )
    assert assert_problem(refused, 400)["type"] == "/problems/invalid-idempotency-key"
    assert stored(stack) == before

    answered = stack.client.get(
        "/api/v1/trials",
        headers=auth(stack.admin),
        environ_overrides={"HTTP_X_REQUEST_ID": "abc\r\nX-Injected: 1"},
    )
    assert answered.status_code == 200
    assert "X-Injected" not in answered.headers
    given = answered.headers["X-Request-Id"]
    assert given and "\r" not in given and "\n" not in given and "abc" not in given

    sponsor = sponsor_token(stack)
    for url in (
        "https://hooks.example.org/in\r\nHost: 127.0.0.1",
        "https://hooks.example.org/\nx",
        "https://a\r.org/",
    ):
        answer = stack.client.post(
            "/api/v1/webhooks",
            json={"url": url, "event_types": ["application.submitted"]},
            headers=auth(sponsor),
        )
        assert_problem(answer, 422, "url")
    assert stack.client.get("/api/v1/webhooks", headers=auth(sponsor)).get_json()["items"] == []


@pytest.mark.slow
def test_s41_a_line_break_sent_in_a_path_a_name_or_a_reason_forges_no_log_line(
    sqlite_stack: Stack, processes: Processes
) -> None:
    stack = sqlite_stack
    base = start_api(processes, {**stack.env(), "ACCRUAL_LOG_LEVEL": "INFO"}, free_port())
    import urllib.error
    import urllib.parse
    import urllib.request

    def send(method: str, path: str, token: str, body: bytes | None = None) -> int:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        request = urllib.request.Request(base + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    forging = urllib.parse.quote(f"x\n{FORGED}\r\n{FORGED}")
    assert send("GET", f"/api/v1/applications/{forging}", stack.coordinator) in (404, 422)
    assert send("GET", f"/api/v1/trials/{forging}", stack.admin) in (404, 422)
    name = f'{{"name": "Clinic\\n{FORGED}"}}'.encode()
    assert send("POST", f"/api/v1/trials/{TRIAL}/sites", stack.admin, name) in (201, 422)
    application_id = decide(stack, screening_id="LOG-INJECTION")
    reason = f'{{"reason": "moved\\n{FORGED}"}}'.encode()
    assert send("POST", f"/api/v1/applications/{application_id}/withdraw", stack.coordinator, reason) == 200
    assert post(stack, application_id, "withdraw", {"reason": f"again\n{FORGED}"}).status_code == 409

    processes.stop_all(LOG_COMPLETE_GRACE_SECONDS)  # its log complete
    log = processes.log("api")
    assert "FORGED-LINE" in log, "the forged text never reached the log: the test would pass vacuously"
    forged = [line for line in log.splitlines() if line.startswith(FORGED.split(" ", 1)[0])]
    assert forged == [], f"lines forged into the API's log: {forged}"
