"""Property-based fuzzing of the HTTP API against its own OpenAPI document (/openapi.json), per role.

Schemathesis reads the document the app serves and generates requests for every operation: valid ones
(positive), ones that break the schema (negative), and valid ones aimed at records that exist (the seeded
trial and site, applications in each status, webhooks and a finished delivery), so that the handlers run
past their 404s. Each request goes to the app in process (WSGI) with an admin's, a site coordinator's or
the sponsor's token, and each answer must pass Schemathesis's own checks: no 5xx, a documented status
code, a documented content type, and a body that matches the documented schema for that status.

Bounded and reproducible: at most MAX_EXAMPLES cases per operation and role, derandomized (a fixed seed
per operation), no example database, no shrinking. The cases do not depend on the answers, so each
role's are drawn once per run and both back-ends replay them (drawing was most of the time). One stack
per back-end serves the whole module; the admin goes last, so that what it changes (a trial closed,
criteria amended) does not narrow the others' runs.
Every failing (role, operation, check, status) is collected with a curl reproduction (token filtered)
and reported together, rather than stopping at the first.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import os
import pickle
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
from schemathesis.core import NOT_SET
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

# Per operation and role: 36 operations x 20 x 3 roles, about a minute in all (25 when there were 29
# operations; lowered as operations were added, to keep the suite's time, not its reach, constant).
MAX_EXAMPLES = 20
SPONSOR = "Allife Medical Science and Technology Co., Ltd."
ROLES = ("coordinator", "sponsor", "admin")  # the admin last: it may close the trial or amend its criteria
KNOWN_APPLICATIONS = 4  # one per status worth aiming at: eligible, needs review, ineligible, submitted


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
    assert len(applications) == KNOWN_APPLICATIONS
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


# Records that exist are named by placeholders while cases are drawn, and by their ids on each back-end
# when the cases are sent: both back-ends replay the same draw.
PLACEHOLDER = "known--"  # within the documented pattern of ids, which a case keeps to


def _known_parameters(method: str, path: str) -> list[dict[str, str]]:
    """Path parameters naming records that exist, as placeholders, one dict per variant; none if the
    path has none."""
    names = PATH_PARAMETER.findall(path)
    if not names:
        return []
    values: dict[str, list[str]] = {
        "trial_id": [TRIAL],
        "site_id": [f"{PLACEHOLDER}site"],
        "application_id": [f"{PLACEHOLDER}application-{n}" for n in range(KNOWN_APPLICATIONS)],
        "webhook_id": [f"{PLACEHOLDER}webhook-{'delete' if method == 'DELETE' else 'keep'}"],
        "delivery_id": [f"{PLACEHOLDER}delivery"],
    }
    if "delivery_id" in names:
        values["webhook_id"] = [f"{PLACEHOLDER}delivery-webhook"]
    if not set(names) <= set(values):
        return []
    count = max(len(values[name]) for name in names)
    return [{name: values[name][n % len(values[name])] for name in names} for n in range(count)]


def _known_records(fuzzed: Fuzzed, role: str) -> dict[str, str]:
    """Each placeholder's record on this back-end, for this role."""
    keep, delete = fuzzed.webhooks.get(role, fuzzed.webhooks["sponsor"])
    return {
        f"{PLACEHOLDER}site": fuzzed.stack.site_id,
        **{f"{PLACEHOLDER}application-{n}": a for n, a in enumerate(fuzzed.applications)},
        f"{PLACEHOLDER}webhook-keep": keep,
        f"{PLACEHOLDER}webhook-delete": delete,
        f"{PLACEHOLDER}delivery-webhook": fuzzed.delivery[0],
        f"{PLACEHOLDER}delivery": fuzzed.delivery[1],
    }


@dataclass(frozen=True)
class Drawn:
    """One generated request, apart from its operation: what each back-end's run sends."""

    path_parameters: dict[str, Any]
    headers: dict[str, Any]
    cookies: dict[str, Any]
    query: dict[str, Any]
    has_body: bool
    body: Any
    media_type: str | None
    multipart_content_types: dict[str, str] | None
    # How it was generated, which the sending obeys: a case generated without its credentials (negative
    # for the security scheme) is sent without the Authorization header the test adds.
    meta: Any

    def case(self, operation: Any, known: dict[str, str]) -> Any:
        """The case for `operation`, with the placeholders naming this back-end's records."""
        path_parameters = {
            name: known.get(value, value) if isinstance(value, str) else value
            for name, value in self.path_parameters.items()
        }
        body = {"body": self.body} if self.has_body else {}
        return operation.Case(
            path_parameters=path_parameters,
            headers=dict(self.headers),
            cookies=dict(self.cookies),
            query=dict(self.query),
            media_type=self.media_type,
            multipart_content_types=self.multipart_content_types,
            _meta=copy.deepcopy(self.meta),  # sending marks it, and a run may replay a case twice
            **body,
        )


def _draw(operation: Any) -> list[Drawn]:
    """Up to MAX_EXAMPLES cases per strategy mix, drawn by Hypothesis with a fixed seed per operation."""
    known = _known_parameters(operation.method.upper(), operation.path)
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE)]
    strategies += [
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=p) for p in known
    ]
    if operation.body or any(True for _ in operation.iter_parameters()):
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    drawn: list[Drawn] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=st.one_of(strategies))
    def record(case: Any) -> None:
        drawn.append(
            Drawn(
                dict(case.path_parameters or {}),
                dict(case.headers or {}),
                dict(case.cookies or {}),
                dict(case.query or {}),
                case.body is not NOT_SET,
                None if case.body is NOT_SET else case.body,
                case.media_type,
                case.multipart_content_types,
                case.meta,
            )
        )

    record()
    return drawn


def _drawn_cases(role: str, operations: list[Any], document: Any, shared: Path) -> dict[str, list[Drawn]]:
    """The role's cases per operation, drawn once per run of the suite and replayed on each back-end.

    Drawing is most of a run's time and does not depend on the answers (no case fails the Hypothesis
    test: findings are collected), so the back-end that comes first draws and keeps the cases in a file
    beside the test processes' temporary directories, and the other reads them; a lock keeps the two
    from drawing at once. The file is named by the document and the bounds, so nothing stale is read.
    """
    text = json.dumps(document, sort_keys=True)
    digest = hashlib.sha256(f"{text}|{MAX_EXAMPLES}|{role}".encode()).hexdigest()[:16]
    path = shared / f"fuzz-cases-{role}-{digest}.pickle"
    with open(shared / f"fuzz-cases-{role}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            cases: dict[str, list[Drawn]] = pickle.loads(path.read_bytes())  # noqa: S301  our own file
            return cases
        cases = {operation.label: _draw(operation) for operation in operations}
        path.write_bytes(pickle.dumps(cases))
    return cases


@dataclass
class Finding:
    """The first case that failed a check with a status, and how many more did."""

    count: int
    reproduction: str
    detail: str


def _send(
    operation: Any,
    cases: list[Drawn],
    role: str,
    token: str,
    known: dict[str, str],
    findings: dict[tuple[str, ...], Finding],
) -> Counter[int]:
    """Send each case to this back-end's app and check its answer; the statuses answered."""
    statuses: Counter[int] = Counter()
    headers = auth(token)
    for drawn in cases:
        case = drawn.case(operation, known)
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
    return statuses


def _operations(fuzzed: Fuzzed) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzzed.stack.app)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 25, [op.label for op in operations]
    return operations


@pytest.fixture(scope="module")
def shared_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every test process of this run shares (each has its own below it under xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.mark.parametrize("role", ROLES)
def test_every_answer_to_fuzzed_requests_is_documented_and_no_5xx(
    fuzzed: Fuzzed, role: str, shared_directory: Path
) -> None:
    started = time.monotonic()
    findings: dict[tuple[str, ...], Finding] = {}
    by_status = Counter[int]()
    per_operation: dict[str, int] = {}
    operations = _operations(fuzzed)
    document = fuzzed.stack.client.get("/openapi.json").get_json()
    drawn = _drawn_cases(role, operations, document, shared_directory)
    known = _known_records(fuzzed, role)
    for operation in operations:
        statuses = _send(operation, drawn[operation.label], role, fuzzed.tokens[role], known, findings)
        per_operation[operation.label] = sum(statuses.values())
        by_status.update(statuses)
    elapsed = time.monotonic() - started
    summary = (
        f"{role}: {sum(per_operation.values())} cases over {len(per_operation)} operations in "
        f"{elapsed:.1f}s; statuses {dict(sorted(by_status.items()))}"
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
