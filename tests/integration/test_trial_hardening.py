"""Issue 11, on SQLite and PostgreSQL: a trial without criteria swallows no application, a screening
that fails ends in review instead of looping, and a malformed registry record is a 422, never a 500
nor half an import."""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from models import Application, ApplicationHistory, Event, Role, Screening, Site, Trial
from services.applications.dead_letters import list_dead_letters, retry_screening
from services.applications.results import read_results
from services.applications.screening import screen_application
from services.tokens import create_token
from services.trials.criteria import bundled_document
from tests.support.applicants import eligible_applicant
from tests.support.cli import accrual_variables, completed, invoke
from tests.support.database import status_of
from tests.support.http import assert_problem
from tests.support.processes import Processes
from tests.support.registry import registry_record
from tests.support.stack import TRIAL, Stack
from tests.support.waiting import wait_until

NEW_TRIAL = "NCT09990001"
CANARY_ABI = 0.4817  # an observation value found nowhere else, to be kept out of the log


def study(nct_id: str = NEW_TRIAL, status: str = "RECRUITING") -> dict[str, Any]:
    """A registry record of a new trial with one location, in `status`; the registry has no criteria."""
    record = registry_record()
    section = record["protocolSection"]
    section["identificationModule"]["nctId"] = nct_id
    section["identificationModule"]["briefTitle"] = f"Hardening {nct_id}"
    section["statusModule"]["overallStatus"] = status
    section["contactsLocationsModule"]["locations"] = [
        {"facility": "Hardening Hospital", "city": "Seoul", "country": "South Korea", "status": status}
    ]
    return record


def admin(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.admin}"}


def post_trial(stack: Stack, body: Any) -> Any:
    # json.dumps, not the client's: it escapes a lone surrogate and writes NaN, as a careless client would.
    return stack.client.post(
        "/api/v1/trials", data=json.dumps(body), content_type="application/json", headers=admin(stack)
    )


def attach_criteria(stack: Stack, trial_id: str) -> None:
    document = copy.deepcopy(bundled_document("NCT06359912.criteria.yaml"))
    document["trial_id"] = trial_id
    response = stack.client.put(f"/api/v1/trials/{trial_id}/criteria", json=document, headers=admin(stack))
    assert response.status_code == 201, response.get_json()


def count(stack: Stack, model: Any, *where: Any) -> int:
    with stack.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --- 1. a trial without criteria -----------------------------------------------------------------


def test_an_application_to_a_trial_without_criteria_is_refused_with_409(stack: Stack) -> None:
    # Import keeps the registry's RECRUITING status; intake is what refuses until criteria are attached.
    created = post_trial(stack, study())
    assert created.status_code == 201, created.get_json()
    assert (created.get_json()["overall_status"], created.get_json()["criteria_version"]) == (
        "RECRUITING",
        None,
    )
    with stack.db.transaction() as session:
        site_id = session.scalars(select(Site.site_id).where(Site.trial_id == NEW_TRIAL)).one()
        coordinator = create_token(session, Role.COORDINATOR, [site_id])
    body = {"trial_id": NEW_TRIAL.lower(), "site_id": site_id, "applicant": eligible_applicant("NOCRIT-1")}
    headers = {"Authorization": f"Bearer {coordinator}", "Idempotency-Key": "no-criteria-1"}
    events = count(stack, Event)

    refused = stack.client.post("/api/v1/applications", json=body, headers=headers)
    problem = assert_problem(refused, 409, "trial_id")
    assert "no criteria" in problem["detail"] and NEW_TRIAL in problem["detail"]
    assert count(stack, Application) == 0 and count(stack, Event) == events  # nothing half-written

    attach_criteria(stack, NEW_TRIAL)
    accepted = stack.client.post(
        "/api/v1/applications", json=body, headers={**headers, "Idempotency-Key": "no-criteria-2"}
    )
    assert accepted.status_code == 202, accepted.get_json()


def test_a_trial_without_criteria_cannot_be_opened_for_recruitment(stack: Stack) -> None:
    assert post_trial(stack, study(status="NOT_YET_RECRUITING")).status_code == 201
    trial_path = f"/api/v1/trials/{NEW_TRIAL}"
    [site] = stack.client.get(f"{trial_path}/sites", headers=admin(stack)).get_json()["items"]
    before = stack.client.get(trial_path, headers=admin(stack)).get_json()
    for status in ("RECRUITING", "ENROLLING_BY_INVITATION"):
        opened = stack.client.patch(trial_path, json={"overall_status": status}, headers=admin(stack))
        assert "no criteria" in assert_problem(opened, 409, "overall_status")["detail"]
    # A recruiting site would open its trial (the trial follows its sites): refused alike.
    site_opened = stack.client.patch(
        f"{trial_path}/sites/{site['site_id']}", json={"status": "RECRUITING"}, headers=admin(stack)
    )
    assert_problem(site_opened, 409, "status")
    added = stack.client.post(f"{trial_path}/sites", json={"name": "Second hospital"}, headers=admin(stack))
    assert_problem(added, 409, "status")

    assert stack.client.get(trial_path, headers=admin(stack)).get_json() == before
    assert stack.client.get(f"{trial_path}/sites", headers=admin(stack)).get_json()["items"] == [site]
    assert count(stack, Event, Event.trial_id == NEW_TRIAL) == 0
    # With criteria, the trial opens.
    attach_criteria(stack, NEW_TRIAL)
    opened = stack.client.patch(trial_path, json={"overall_status": "RECRUITING"}, headers=admin(stack))
    assert opened.status_code == 200 and opened.get_json()["overall_status"] == "RECRUITING"


# --- 1. a screening that fails ends in review, dead-lettered -------------------------------------


def submitted(stack: Stack, screening_id: str, **changes: Any) -> tuple[str, str]:
    """(application id, id of its application.submitted event)."""
    response = stack.submit(eligible_applicant(screening_id, **changes))
    assert response.status_code == 202, response.get_json()
    application_id: str = response.get_json()["id"]
    with stack.db.sessions() as session:
        event_id = session.scalars(select(Event.id).where(Event.application_id == application_id)).one()
    return application_id, event_id


def reasons(stack: Stack, application_id: str) -> list[str | None]:
    with stack.db.sessions() as session:
        return list(
            session.scalars(
                select(ApplicationHistory.reason)
                .where(ApplicationHistory.application_id == application_id)
                .order_by(ApplicationHistory.id)
            )
        )


def assert_dead_lettered(stack: Stack, application_id: str, cause: str) -> None:
    with stack.db.sessions() as session:
        row = session.get_one(Application, application_id)
        assert (row.status, row.decision) == ("needs_review", "needs_review")
        assert row.dead_lettered_at is not None and row.decided_at is not None
        assert application_id in [letter.application_id for letter in list_dead_letters(session)]
    note = reasons(stack, application_id)[-1]
    assert note is not None and cause in note and "accrual screening retry" in note
    screened = count(
        stack, Event, Event.application_id == application_id, Event.type == "application.screened"
    )
    assert screened == 1


class Exploding:
    """Compiled criteria whose evaluation fails, quoting an observation as careless code might."""

    def evaluate(self, observations: dict[str, Any], *_: Any) -> Any:
        raise ValueError(f"cannot evaluate abi={observations['abi']}")


def test_a_screening_that_raises_is_dead_lettered_in_review_and_logs_no_observation(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    application_id, event_id = submitted(stack, "RAISES-1", abi=CANARY_ABI)
    monkeypatch.setattr("services.applications.screening.compiled_version", lambda *_: Exploding())
    with caplog.at_level(logging.INFO):
        outcome = screen_application(stack.db, application_id, event_id, max_deliveries=5)
    assert (outcome.status, outcome.decision) == ("decided", "needs_review")
    assert_dead_lettered(stack, application_id, "ValueError")
    with stack.db.sessions() as session:
        [screening] = session.scalars(select(Screening).where(Screening.application_id == application_id))
    assert screening.decision == "needs_review"
    assert read_results(screening.results) == []  # not evaluated
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures and application_id in failures[0].getMessage()
    for record in caplog.records:
        assert str(CANARY_ABI) not in record.getMessage() and record.exc_info is None
    # A redelivery changes nothing; once the cause is gone, the operator's retry screens it for real.
    assert screen_application(stack.db, application_id, event_id, 5).status == "duplicate"
    monkeypatch.undo()
    with stack.db.transaction() as session:
        retry_screening(session, [application_id], "test")
    with stack.db.sessions() as session:
        retried = session.scalars(
            select(Event.id).where(
                Event.application_id == application_id, Event.type == "application.updated"
            )
        ).one()
    assert screen_application(stack.db, application_id, retried, 5).decision == "eligible"


def test_a_screening_of_a_trial_without_criteria_is_dead_lettered_with_no_screening_round(
    stack: Stack,
) -> None:
    application_id, event_id = submitted(stack, "NOCRIT-2")
    with stack.db.transaction() as session:  # criteria gone, as for an application from before intake refused
        session.execute(update(Trial).where(Trial.trial_id == TRIAL).values(current_criteria_version=None))
    outcome = screen_application(stack.db, application_id, event_id, max_deliveries=5)
    assert (outcome.status, outcome.decision) == ("decided", "needs_review")
    assert_dead_lettered(stack, application_id, f"trial {TRIAL} has no criteria")
    assert count(stack, Screening, Screening.application_id == application_id) == 0


def test_a_missing_criteria_version_lookup_error_is_dead_lettered(stack: Stack) -> None:
    application_id, event_id = submitted(stack, "LOOKUP-1")
    with stack.db.transaction() as session:
        session.execute(update(Trial).where(Trial.trial_id == TRIAL).values(current_criteria_version=7))
    screen_application(stack.db, application_id, event_id, max_deliveries=5)
    assert_dead_lettered(stack, application_id, "LookupError")


class Unreachable:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def evaluate(self, *_: Any) -> Any:
        raise self.error


class Slow(Exception):
    """Stands for the worker's soft time limit, which the task declares transient."""


@pytest.mark.parametrize(
    ("error", "also_transient"),
    [
        (
            OperationalError(
                "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
            ),
            (),
        ),
        (OperationalError("SELECT 1", {}, Exception("canceling statement due to statement timeout")), ()),
        (Slow(), (Slow,)),
    ],
    ids=["database away", "statement timeout", "declared by the task"],
)
def test_a_transient_failure_is_raised_for_the_task_to_retry_and_leaves_the_application_submitted(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    also_transient: tuple[type[Exception], ...],
) -> None:
    application_id, event_id = submitted(stack, "TRANSIENT-1")
    monkeypatch.setattr("services.applications.screening.compiled_version", lambda *_: Unreachable(error))
    with pytest.raises(type(error)):
        screen_application(stack.db, application_id, event_id, 5, also_transient=also_transient)
    with stack.db.sessions() as session:
        row = session.get_one(Application, application_id)
        # A lost database gives the delivery back (the task retries it); an error that may recur for this
        # application every time, or a time limit the task declared, keeps it counted, like a delivery
        # that killed its worker, so it ends in review rather than in a loop.
        counted = 0 if isinstance(error, OperationalError) and error.connection_invalidated else 1
        assert (row.status, row.dead_lettered_at, row.screening_deliveries) == ("submitted", None, counted)


@pytest.mark.slow
def test_a_worker_dead_letters_a_screening_whose_trial_has_no_criteria_instead_of_looping(
    backend: Stack, processes: Processes
) -> None:
    application_id, _ = submitted(backend, "NOCRIT-WORKER")
    with backend.db.transaction() as session:
        session.execute(update(Trial).where(Trial.trial_id == TRIAL).values(current_criteria_version=None))
    processes.start("worker", ["worker"], backend.env())
    processes.start("beat", ["beat"], backend.env())
    wait_until(
        lambda: status_of(backend, application_id) == "needs_review",
        timeout=90,
        what="the dead letter: " + processes.log("worker")[-1500:],
    )
    assert_dead_lettered(backend, application_id, "has no criteria")
    assert "raised unexpected" not in processes.log("worker")  # the task ended cleanly: nothing to retry


# --- 2. malformed registry records ----------------------------------------------------------------

LOCATION = ("protocolSection", "contactsLocationsModule", "locations", 0)
IDENT = ("protocolSection", "identificationModule")
DEEP: tuple[str | int, ...] = ("protocolSection", "descriptionModule", "deep", *([0] * 29))
Mutation = Callable[[dict[str, Any]], None]


def column(attribute: Any) -> int:
    length: int = attribute.property.columns[0].type.length
    return length


def setting(*path: str | int, value: Any) -> Mutation:
    def mutate(record: dict[str, Any]) -> None:
        target: Any = record
        for part in path[:-1]:
            target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
        target[path[-1]] = value

    return mutate


def without_nct_id(org_id: str) -> Mutation:
    def mutate(record: dict[str, Any]) -> None:
        ident = record["protocolSection"]["identificationModule"]
        del ident["nctId"]
        ident["orgStudyIdInfo"] = {"id": org_id}

    return mutate


def official_title_only(record: dict[str, Any]) -> None:
    ident = record["protocolSection"]["identificationModule"]
    del ident["briefTitle"]
    ident["officialTitle"] = "T" * (column(Trial.title) + 1)


def deep(record: dict[str, Any]) -> None:
    value: Any = "bottom"
    for _ in range(40):
        value = [value]
    record["protocolSection"]["descriptionModule"]["deep"] = value


def hand_made_site_name(record: dict[str, Any]) -> None:
    locations = record["protocolSection"]["contactsLocationsModule"]["locations"]
    locations.append({"facility": "Hardening annex", "city": "Beijing", "country": "China"})


def dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(map(str, path))


# (case, mutation of the seed trial's own record, the field the 422 must name)
MALFORMED: list[tuple[str, Mutation, str]] = [
    (
        "title too long",
        setting(*IDENT, "briefTitle", value="T" * (column(Trial.title) + 1)),
        dotted((*IDENT, "briefTitle")),
    ),
    ("official title too long", official_title_only, dotted((*IDENT, "officialTitle"))),
    ("blank title", setting(*IDENT, "briefTitle", value="   "), dotted((*IDENT, "briefTitle"))),
    (
        "sponsor too long",
        setting(
            "protocolSection",
            "sponsorCollaboratorsModule",
            "leadSponsor",
            "name",
            value="S" * (column(Trial.sponsor) + 1),
        ),
        "protocolSection.sponsorCollaboratorsModule.leadSponsor.name",
    ),
    (
        "facility too long",
        setting(*LOCATION, "facility", value="F" * (column(Site.name) + 1)),
        dotted((*LOCATION, "facility")),
    ),
    (
        "city too long",
        setting(*LOCATION, "city", value="C" * (column(Site.city) + 1)),
        dotted((*LOCATION, "city")),
    ),
    (
        "country too long",
        setting(*LOCATION, "country", value="C" * (column(Site.country) + 1)),
        dotted((*LOCATION, "country")),
    ),
    (
        "minimum age too long",
        setting(
            "protocolSection", "eligibilityModule", "minimumAge", value="1" * (column(Trial.minimum_age) + 1)
        ),
        "protocolSection.eligibilityModule.minimumAge",
    ),
    (
        "sex not in the registry's list",
        setting("protocolSection", "eligibilityModule", "sex", value="EVERYBODY"),
        "protocolSection.eligibilityModule.sex",
    ),
    (
        "enrollment type too long",
        setting("protocolSection", "designModule", "enrollmentInfo", "type", value="ESTIMATED_BY_SPONSOR"),
        "protocolSection.designModule.enrollmentInfo.type",
    ),
    (
        "enrollment count 2^31",
        setting("protocolSection", "designModule", "enrollmentInfo", "count", value=2**31),
        "protocolSection.designModule.enrollmentInfo.count",
    ),
    (
        "enrollment count NaN",
        setting("protocolSection", "designModule", "enrollmentInfo", "count", value=math.nan),
        "protocolSection.designModule.enrollmentInfo.count",
    ),
    (
        "enrollment count as text",
        setting("protocolSection", "designModule", "enrollmentInfo", "count", value="27"),
        "protocolSection.designModule.enrollmentInfo.count",
    ),
    (
        "NaN in a field Accrual does not read",
        setting("protocolSection", "descriptionModule", "briefSummary", value=math.nan),
        "protocolSection.descriptionModule.briefSummary",
    ),
    ("Infinity at the top", setting("hasResults", value=math.inf), "hasResults"),
    (
        "NUL in the title",
        setting(*IDENT, "briefTitle", value="Safety\x00 study"),
        dotted((*IDENT, "briefTitle")),
    ),
    (
        "NUL in a facility",
        setting(*LOCATION, "facility", value="Beijing\x00site"),
        dotted((*LOCATION, "facility")),
    ),
    (
        "NUL in free text",
        setting("protocolSection", "descriptionModule", "briefSummary", value="a\x00b"),
        "protocolSection.descriptionModule.briefSummary",
    ),
    (
        "NUL in a key",
        setting("protocolSection", "descriptionModule", "brief\x00Summary", value="x"),
        # Over HTTP the request-wide NUL guard answers first, naming the key itself (escaped); the
        # registry check names the object holding it for `accrual trials import`.
        "protocolSection.descriptionModule.brief\\u0000Summary",
    ),
    (
        "NUL in a phase",
        setting("protocolSection", "designModule", "phases", value=["PHASE1\x00"]),
        "protocolSection.designModule.phases.0",
    ),
    (
        "NUL in a condition",
        setting("protocolSection", "conditionsModule", "conditions", value=["CLI\x00"]),
        "protocolSection.conditionsModule.conditions.0",
    ),
    (
        "escape in the sponsor",
        setting(
            "protocolSection", "sponsorCollaboratorsModule", "leadSponsor", "name", value="Allife\x1b[2J"
        ),
        "protocolSection.sponsorCollaboratorsModule.leadSponsor.name",
    ),
    (
        "lone surrogate in a city",
        setting(*LOCATION, "city", value="Bei\ud800jing"),
        dotted((*LOCATION, "city")),
    ),
    (
        "trial id with a slash and markup",
        setting(*IDENT, "nctId", value="A/B<SCRIPT>"),
        dotted((*IDENT, "nctId")),
    ),
    (
        "Cyrillic look-alike trial id",
        setting(*IDENT, "nctId", value="NC\u0422063599120"),
        dotted((*IDENT, "nctId")),
    ),
    (
        "trial id longer than the NCT column",
        setting(*IDENT, "nctId", value="NCT" + "0" * (column(Trial.nct_id) - 2)),
        dotted((*IDENT, "nctId")),
    ),
    (
        "protocol id outside the alphabet as trial id",
        without_nct_id("NL003 CLI/III"),
        dotted((*IDENT, "orgStudyIdInfo", "id")),
    ),
    ("nesting deeper than any record", deep, dotted(DEEP)),
    (
        "facility named like a site added by hand",
        hand_made_site_name,
        "protocolSection.contactsLocationsModule.locations.1.facility",
    ),
]


def everything(stack: Stack) -> Any:
    """Every column of every trial and site: what a refused import must leave as it was."""
    with stack.db.sessions() as session:
        trials = session.execute(select(Trial.__table__).order_by(Trial.trial_id)).all()
        sites = session.execute(select(Site.__table__).order_by(Site.site_id)).all()
    return [tuple(row) for row in trials], [tuple(row) for row in sites]


def test_every_malformed_registry_record_is_a_422_naming_the_field_and_changes_nothing(stack: Stack) -> None:
    assert len(MALFORMED) >= 22
    added = stack.client.post(
        f"/api/v1/trials/{TRIAL}/sites", json={"name": "Hardening annex"}, headers=admin(stack)
    )
    assert added.status_code == 201, added.get_json()
    before = everything(stack)
    failures = []
    for case, mutate, field in MALFORMED:
        record = registry_record()
        mutate(record)
        response = post_trial(stack, record)
        try:
            problem = assert_problem(response, 422, field)
            assert problem["detail"] and everything(stack) == before
        except AssertionError as exc:
            failures.append(f"{case}: {response.status_code} {str(exc).splitlines()[0][:300]}")
    assert failures == []
    # The unmodified record still replaces the trial with itself.
    assert post_trial(stack, registry_record()).status_code == 200


def test_the_cli_import_refuses_a_malformed_record_naming_file_and_field_and_imports_nothing(
    sqlite_stack: Stack, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(study("NCT09990002")))
    broken = study("NCT09990003")
    broken["protocolSection"]["identificationModule"]["briefTitle"] = "T" * (column(Trial.title) + 1)
    bad.write_text(json.dumps(broken))
    before = everything(sqlite_stack)
    result = completed(invoke(accrual_variables(sqlite_stack.env()), "trials", "import", str(good), str(bad)))
    assert result.returncode != 0, result.stdout
    [line] = result.stderr.strip().splitlines()
    assert str(bad) in line and "protocolSection.identificationModule.briefTitle" in line, line
    assert "nothing was imported" in line
    assert everything(sqlite_stack) == before
