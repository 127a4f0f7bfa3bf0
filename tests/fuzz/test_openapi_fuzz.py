"""Property-based fuzzing of the HTTP API against its own OpenAPI document (/openapi.json), per role.

Schemathesis reads the document the app serves and generates requests for every operation: valid ones
(positive), ones that break the schema (negative), and valid ones aimed at records that exist (the seeded
trial and site, applications in each status, webhooks and a finished delivery), so that the handlers run
past their 404s. Each request goes to the app in process (WSGI) with an admin's, a site coordinator's or
the sponsor's token, and each answer must pass Schemathesis's own checks: no 5xx, a documented status
code, a documented content type, and a body that matches the documented schema for that status.

Bounded and reproducible: at most MAX_EXAMPLES cases per operation and role, derandomized (a fixed seed
per operation), no example database, no shrinking. One SQLite stack serves the whole module; the admin
goes last, so that what it changes (a trial closed, criteria amended) does not narrow the others' runs.
Every failing (role, operation, check, status) is collected with a curl reproduction (token filtered)
and reported together, rather than stopping at the first.
"""

from __future__ import annotations

import copy
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok

from models import Role
from services.notifications.webhooks import claim_due, deliver, lease_for
from services.tokens import create_token
from tests.support.applicants import eligible_applicant
from tests.support.http import auth
from tests.support.relay import relay
from tests.support.screening import decide
from tests.support.servers import PG_UNAVAILABLE, fresh_pg_database, unavailable
from tests.support.stack import TRIAL, Stack, make_settings

pytestmark = pytest.mark.slow  # hundreds of generated requests per role

MAX_EXAMPLES = 25  # per operation and role: 29 operations x 25 x 3 roles, about a minute in all
SPONSOR = "Allife Medical Science and Technology Co., Ltd."
ROLES = ("coordinator", "sponsor", "admin")  # the admin last: it may close the trial or amend its criteria


def problem_schema_conformance(ctx: Any, response: Any, case: Any) -> bool | None:
    """The built-in response schema check, for the problem+json answers too.

    The document declares every answer as application/json; the errors leave as application/problem+json
    (content_type_conformance reports that), and Schemathesis validates no body whose media type is not
    documented. Relabelled, the problem's body is held to the documented schema all the same.
    """
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/problem+json"):
        return None
    relabelled = copy.copy(response)
    relabelled.headers = {**response.headers, "content-type": ["application/json"]}
    result: bool | None = case.operation.validate_response(relabelled, case=case)
    return result


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    problem_schema_conformance,
]
HOOK_URL = "http://127.0.0.1:9/x"  # loopback's discard port: nothing listens, deliveries fail at once
PATH_PARAMETER = re.compile(r"{(\w+)}")


@dataclass
class Fuzzed:
    """The module's one stack, its tokens and the ids of records worth aiming at."""

    stack: Stack
    tokens: dict[str, str]
    applications: list[str]
    webhooks: dict[str, tuple[str, str]]  # role -> (a webhook to keep, a webhook to delete)
    delivery: tuple[str, str]  # (webhook id, delivery id) of a failed delivery, the sponsor's


def _webhook(stack: Stack, token: str) -> str:
    types = ["application.submitted", "application.screened", "trial.status_changed"]
    response = stack.client.post(
        "/api/v1/webhooks", json={"url": HOOK_URL, "event_types": types}, headers=auth(token)
    )
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per back-end for the whole module: the fuzz runs share their seeded world."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz-db') / 'accrual.db'}"
        return
    if not request.getfixturevalue("pg_available"):
        unavailable(PG_UNAVAILABLE)
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Fuzzed]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    settings_ = make_settings(
        data_dir,
        database_url,
        webhook_allow_private=True,
        webhook_retry_schedule="",  # one attempt: a failed delivery is finished, ready for redelivery
        webhook_timeout_seconds=1,
    )
    stack = Stack(settings_)
    with stack.db.transaction() as session:
        sponsor = create_token(session, Role.SPONSOR, sponsor=SPONSOR)
    tokens = {"admin": stack.admin, "coordinator": stack.coordinator, "sponsor": sponsor}
    webhooks = {
        role: (_webhook(stack, tokens[role]), _webhook(stack, tokens[role])) for role in ("sponsor", "admin")
    }
    applications = [
        decide(stack, screening_id="FUZZ-ELIGIBLE"),
        decide(stack, screening_id="FUZZ-REVIEW", hiv_positive=None),
        decide(stack, screening_id="FUZZ-INELIGIBLE", wagner_grade=5),
        stack.submit(eligible_applicant("FUZZ-SUBMITTED")).get_json()["id"],
    ]
    relay(stack)  # writes the webhook deliveries the events are owed
    with stack.db.transaction() as session:
        claims = claim_due(session, lease_for(settings_))
    for delivery_id, claim in claims:
        deliver(stack.db, delivery_id, claim, settings_)
    listed = stack.client.get(f"/api/v1/webhooks/{webhooks['sponsor'][0]}/deliveries", headers=auth(sponsor))
    failed = [d["id"] for d in listed.get_json()["items"] if d["status"] == "failed"]
    assert failed, listed.get_json()
    yield Fuzzed(stack, tokens, applications, webhooks, (webhooks["sponsor"][0], failed[0]))
    stack.close()


def _known_parameters(fuzzed: Fuzzed, role: str, method: str, path: str) -> list[dict[str, str]]:
    """Path parameters naming records that exist, one dict per variant; none if the path has none."""
    names = PATH_PARAMETER.findall(path)
    if not names:
        return []
    keep, delete = fuzzed.webhooks.get(role, fuzzed.webhooks["sponsor"])
    values: dict[str, list[str]] = {
        "trial_id": [TRIAL],
        "site_id": [fuzzed.stack.site_id],
        "application_id": fuzzed.applications,
        "webhook_id": [delete if method == "DELETE" else keep],
        "delivery_id": [fuzzed.delivery[1]],
    }
    if "delivery_id" in names:
        values["webhook_id"] = [fuzzed.delivery[0]]
    if not set(names) <= set(values):
        return []
    count = max(len(values[name]) for name in names)
    return [{name: values[name][n % len(values[name])] for name in names} for n in range(count)]


@dataclass
class Finding:
    """The first case that failed a check with a status, and how many more did."""

    count: int
    reproduction: str
    detail: str


def _fuzz_operation(
    operation: Any,
    role: str,
    token: str,
    known: list[dict[str, str]],
    findings: dict[tuple[str, ...], Finding],
) -> tuple[int, Counter[int]]:
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    strategies += [
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=p) for p in known
    ]
    if operation.body or any(True for _ in operation.iter_parameters()):
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    statuses: Counter[int] = Counter()
    headers = auth(token)

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def run(case: Any) -> None:
        response = None
        try:
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Failure, FailureGroup) as exc:
            failures = list(exc.exceptions) if isinstance(exc, FailureGroup) else [exc]
            for failure in failures:
                key = (role, operation.label, failure.title, str(response.status_code if response else "-"))
                found = findings.get(key)
                if found is None:
                    detail = (failure.message or "").strip()[:600]
                    findings[key] = Finding(1, case.as_curl_command(headers=headers), detail)
                else:
                    found.count += 1

    run()
    return sum(statuses.values()), statuses


def _operations(fuzzed: Fuzzed) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzzed.stack.app)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 25, [op.label for op in operations]
    return operations


@pytest.mark.parametrize("role", ROLES)
def test_every_answer_to_fuzzed_requests_is_documented_and_no_5xx(fuzzed: Fuzzed, role: str) -> None:
    started = time.monotonic()
    findings: dict[tuple[str, ...], Finding] = {}
    total, by_status = 0, Counter[int]()
    per_operation: dict[str, int] = {}
    for operation in _operations(fuzzed):
        known = _known_parameters(fuzzed, role, operation.method.upper(), operation.path)
        cases, statuses = _fuzz_operation(operation, role, fuzzed.tokens[role], known, findings)
        per_operation[operation.label] = cases
        total += cases
        by_status.update(statuses)
    elapsed = time.monotonic() - started
    summary = (
        f"{role}: {total} cases over {len(per_operation)} operations in {elapsed:.1f}s; "
        f"statuses {dict(sorted(by_status.items()))}"
    )
    print(summary)  # shown with -s or -rP
    assert all(per_operation.values()), f"operations never exercised: {per_operation}"
    assert any(200 <= status < 300 for status in by_status), f"no request succeeded: {summary}"
    if findings:
        pytest.fail(f"{summary}\n{report(findings)}", pytrace=False)


def report(findings: dict[tuple[str, ...], Finding]) -> str:
    """Failures grouped by check and status, each with the operations it hit and its first case."""
    groups: dict[tuple[str, str], list[tuple[str, Finding]]] = {}
    for (_role, operation, title, status), found in findings.items():
        groups.setdefault((status, title), []).append((operation, found))
    parts = [f"{len(groups)} distinct failures (check, status):"]
    for (status, title), hits in sorted(groups.items()):
        hits.sort()
        count = sum(found.count for _, found in hits)
        operations = ", ".join(operation for operation, _ in hits)
        example = hits[0][1]
        parts.append(
            f"* {title}, status {status} (x{count}) in {len(hits)} operations: {operations}\n"
            f"{example.detail}\ne.g. {example.reproduction}".replace("\n", "\n    ")
        )
    return "\n\n".join(parts)
