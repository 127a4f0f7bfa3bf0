"""Nothing clinical and no secret reaches the logs, even at DEBUG.

A full flow (intake, screening, correction, review, enrolment, withdrawal, prescreening, reads, lists,
a refused submission, the recruitment report, the event feed, a webhook subscription, counting) runs
through the Flask app and the service functions with distinctive canary values: screening ids,
observation values, dates, free-text reasons, the tokens, the webhook secret, the service's secret key
and its data keys. None of them may appear in what was logged: neither in a record's message nor in its
arguments nor in its exception. It runs twice: with the root logger at DEBUG as ACCRUAL_LOG_LEVEL=DEBUG
gives it (libraries keep the levels they set for themselves), and with every logger at DEBUG, the
libraries' too. The slow test does the same with the real `accrual worker` and `accrual beat` processes
started with ACCRUAL_LOG_LEVEL=DEBUG, reading their log files.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models import Event, Role
from services.applications.screening import screen_application
from services.reporting.counts import count_application
from services.tokens import create_token
from tests.support.applicants import eligible_applicant
from tests.support.applications import post
from tests.support.http import auth
from tests.support.pipeline import decided, start_pipeline
from tests.support.processes import LOG_COMPLETE_GRACE_SECONDS, Processes
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack, make_settings, sqlite_url
from tests.support.waiting import wait_until

SPONSOR = "Allife Medical Science and Technology Co., Ltd."
SECRET_KEY = "test-secret"  # what make_settings and Stack.env give the service

# Observation values no log line, id or timestamp would hold by chance.
BIRTH_DATE = "1951-03-17"
CONSENT_DATE = "2026-10-03"
HEMOGLOBIN = 13.37  # g/dL: 133.7 g/L once converted
CORRECTED_HEMOGLOBIN = 14.41  # g/dL: 144.1 g/L
HBA1C = 7.919  # %
PRESCREEN_ABI = 0.4321
REFUSED_HEMOGLOBIN = 987.654  # g/L, out of range: the submission is refused
REVIEW_REASON = "LEAK-CANARY-REASON reviewed HIV serology on file"
WITHDRAW_REASON = "LEAK-CANARY-WITHDRAWN moved to another city"
VALUE_CANARIES = (
    BIRTH_DATE,
    CONSENT_DATE,
    "13.37",
    "133.7",
    "14.41",
    "144.1",
    "7.919",
    "0.4321",
    "987.654",
    "LEAK-CANARY-REASON",
    "LEAK-CANARY-WITHDRAWN",
)


def canary_applicant(number: int, **changes: Any) -> dict[str, Any]:
    canaries: dict[str, Any] = {
        "birth_date": BIRTH_DATE,
        "consent_date": CONSENT_DATE,
        "hemoglobin_g_l": {"value": HEMOGLOBIN, "unit": "g/dL"},
        "hba1c_pct": {"value": HBA1C, "unit": "%"},
    }
    return eligible_applicant(f"LEAK-CANARY-SCR-{number}", **{**canaries, **changes})


# SQLAlchemy's statement timings ("[cached since 0.4321s ago]", "[generated in 13.37s]") are durations,
# not data: one once matched a numeric canary by chance.
# The duration is a record argument of its own ("cached since 0.4321s ago"), bracketed only in the message.
TIMINGS = re.compile(r"(?:cached since|generated in) [0-9.e-]+s(?: ago)?")


def leaks(text: str, secrets: Iterable[str]) -> list[str]:
    text = TIMINGS.sub("[timing]", text)
    return [secret for secret in secrets if secret in text]


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    """Everything a handler may write of a record: its message, its arguments, its exception."""
    yield str(record.msg)
    yield record.getMessage()
    arguments = record.args
    if isinstance(arguments, dict):
        arguments = tuple(arguments.values())
    for argument in arguments or ():
        yield str(argument)
        yield repr(argument)
    if record.exc_text:
        yield record.exc_text
    if record.exc_info and record.exc_info[1] is not None:
        yield repr(record.exc_info[1])


@contextmanager
def logging_at_debug(caplog: pytest.LogCaptureFixture, *, every_logger: bool) -> Iterator[None]:
    """The root logger at DEBUG, caplog capturing from DEBUG up; restored afterwards.

    With `every_logger`, also every logger that exists so far at DEBUG, enabled and propagating, even
    those a library set higher for itself (SQLAlchemy sets `sqlalchemy` to WARNING on import). Loggers
    made later inherit DEBUG from the root; a level the service sets while it starts is its own choice
    and kept (create_app sets `services` to ACCRUAL_LOG_LEVEL, DEBUG here).
    """
    root = logging.getLogger()
    saved_root = root.level
    saved: dict[logging.Logger, tuple[int, bool, bool]] = {}
    caplog.set_level(logging.DEBUG)
    root.setLevel(logging.DEBUG)
    for logger in list(logging.Logger.manager.loggerDict.values()) if every_logger else ():
        if isinstance(logger, logging.Logger):
            saved[logger] = (logger.level, logger.disabled, logger.propagate)
            logger.setLevel(logging.DEBUG)
            logger.disabled = False
            logger.propagate = True
    try:
        yield
    finally:
        for logger, (level, disabled, propagate) in saved.items():
            logger.setLevel(level)
            logger.disabled = disabled
            logger.propagate = propagate
        root.setLevel(saved_root)


def latest_event_id(stack: Stack, application_id: str) -> str:
    with stack.db.sessions() as session:
        event_id = session.scalars(
            select(Event.id).where(Event.application_id == application_id).order_by(Event.seq.desc())
        ).first()
    assert event_id is not None
    return str(event_id)


def run_full_flow(stack: Stack, sponsor: str) -> list[str]:
    """Every use case once, with canaries; returns the secrets the answers revealed (webhook secret)."""
    coordinator, admin = auth(stack.coordinator), auth(stack.admin)

    eligible = decide(
        stack,
        screening_id="LEAK-CANARY-SCR-1",
        birth_date=BIRTH_DATE,
        consent_date=CONSENT_DATE,
        hemoglobin_g_l={"value": HEMOGLOBIN, "unit": "g/dL"},
        hba1c_pct={"value": HBA1C, "unit": "%"},
    )
    needs_review = decide(
        stack,
        screening_id="LEAK-CANARY-SCR-2",
        birth_date=BIRTH_DATE,
        consent_date=CONSENT_DATE,
        hemoglobin_g_l={"value": HEMOGLOBIN, "unit": "g/dL"},
        hiv_positive=None,
    )
    ineligible = decide(
        stack,
        screening_id="LEAK-CANARY-SCR-3",
        birth_date=BIRTH_DATE,
        consent_date=CONSENT_DATE,
        hemoglobin_g_l={"value": HEMOGLOBIN, "unit": "g/dL"},
        wagner_grade=5,
    )
    statuses = {
        i: stack.client.get(f"/api/v1/applications/{i}", headers=coordinator).get_json()["status"]
        for i in (eligible, needs_review, ineligible)
    }
    assert statuses == {eligible: "eligible", needs_review: "needs_review", ineligible: "ineligible"}

    # An idempotent submission and its replay.
    keyed = {"Idempotency-Key": "LEAK-CANARY-IDEMPOTENCY-1"}
    first = stack.submit(canary_applicant(5), **keyed)
    assert first.status_code == 202, first.get_json()
    replay = stack.submit(canary_applicant(5), **keyed)
    assert replay.get_json()["id"] == first.get_json()["id"]
    withdrawn_early = first.get_json()["id"]

    # A correction, screened again.
    etag = stack.client.get(f"/api/v1/applications/{eligible}", headers=coordinator).headers["ETag"]
    corrected = stack.client.patch(
        f"/api/v1/applications/{eligible}",
        json={"applicant": {"hemoglobin_g_l": {"value": CORRECTED_HEMOGLOBIN, "unit": "g/dL"}}},
        headers={**coordinator, "If-Match": etag},
    )
    assert corrected.status_code in (200, 202), corrected.get_json()
    screen_application(stack.db, eligible, latest_event_id(stack, eligible), 5)

    # Review, enrolment, withdrawal.
    reviewed = post(stack, needs_review, "review", {"decision": "eligible", "reason": REVIEW_REASON})
    assert reviewed.status_code == 200, reviewed.get_json()
    enrolled = post(stack, eligible, "enroll", {"reason": "LEAK-CANARY-REASON enrolled"})
    assert enrolled.status_code == 200, enrolled.get_json()
    withdrawn = post(stack, needs_review, "withdraw", {"reason": WITHDRAW_REASON})
    assert withdrawn.status_code == 200, withdrawn.get_json()
    assert post(stack, withdrawn_early, "withdraw", {"reason": WITHDRAW_REASON}).status_code == 200

    # Prescreening stores nothing and logs nothing clinical.
    observations = canary_applicant(0, abi=PRESCREEN_ABI)
    del observations["screening_id"]
    prescreened = stack.client.post(
        "/api/v1/prescreen", json={"applicant": observations, "trial_ids": [TRIAL]}, headers=coordinator
    )
    assert prescreened.status_code == 200, prescreened.get_json()

    # Reads as coordinator and admin, as JSON and FHIR, and the lists.
    for application_id in (eligible, needs_review, ineligible):
        for who in (coordinator, admin):
            assert stack.client.get(f"/api/v1/applications/{application_id}", headers=who).status_code == 200
            fhir = stack.client.get(f"/api/v1/applications/{application_id}?format=fhir", headers=who)
            assert fhir.status_code == 200
    for who in (coordinator, admin):
        listed = stack.client.get(f"/api/v1/applications?trial_id={TRIAL}&limit=2", headers=who)
        assert listed.status_code == 200
        cursor = listed.get_json().get("next_cursor")
        if cursor:
            following = f"/api/v1/applications?trial_id={TRIAL}&limit=2&cursor={cursor}"
            assert stack.client.get(following, headers=who).status_code == 200

    # A refused submission: the bad value must be neither echoed nor logged.
    refused = stack.submit(canary_applicant(4, hemoglobin_g_l={"value": REFUSED_HEMOGLOBIN, "unit": "g/L"}))
    assert refused.status_code == 422, refused.get_json()
    assert "987.654" not in refused.get_data(as_text=True)

    # What sponsors see: the report, the events, a webhook subscription.
    for who in (auth(sponsor), admin):
        report = stack.client.get(f"/api/v1/trials/{TRIAL}/recruitment", headers=who)
        assert report.status_code == 200, report.get_json()
        feed = stack.client.get("/api/v1/events?limit=5", headers=who)
        assert feed.status_code == 200, feed.get_json()
        following = feed.get_json()["next_cursor"]
        assert stack.client.get(f"/api/v1/events?after={following}", headers=who).status_code == 200
    subscribed = stack.client.post(
        "/api/v1/webhooks",
        json={
            "url": "http://127.0.0.1:9/x",
            "event_types": ["application.submitted", "application.screened"],
        },
        headers=auth(sponsor),
    )
    assert subscribed.status_code == 201, subscribed.get_json()
    secret = subscribed.get_json()["secret"]
    assert stack.client.get("/api/v1/webhooks", headers=auth(sponsor)).status_code == 200

    for application_id in (eligible, needs_review, ineligible, withdrawn_early):
        count_application(stack.db, application_id)
    return [secret]


def test_a_full_flow_at_debug_logs_no_clinical_value_and_no_secret(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, database_url: str
) -> None:
    """DEBUG as an operator gets it (ACCRUAL_LOG_LEVEL=DEBUG: the root logger and the service's)."""
    full_flow_logs_nothing_secret(caplog, tmp_path, database_url, every_logger=False)


def test_a_full_flow_with_every_logger_at_debug_logs_no_clinical_value_and_no_secret(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, database_url: str
) -> None:
    """Every logger at DEBUG, the libraries' too (SQLAlchemy's engine logs result rows at DEBUG)."""
    full_flow_logs_nothing_secret(caplog, tmp_path, database_url, every_logger=True)


def full_flow_logs_nothing_secret(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, database_url: str, *, every_logger: bool
) -> None:
    settings = make_settings(tmp_path, database_url, webhook_allow_private=True, log_level="DEBUG")
    with logging_at_debug(caplog, every_logger=every_logger):
        stack = Stack(settings)
        try:
            with stack.db.transaction() as session:
                sponsor = create_token(session, Role.SPONSOR, sponsor=SPONSOR)
            revealed = run_full_flow(stack, sponsor)
        finally:
            stack.close()

    data_keys = [entry.partition(":")[2] for entry in settings.data_keyring_text().split(",") if entry]
    secrets = [
        *VALUE_CANARIES,
        "LEAK-CANARY",  # every screening id, reason and idempotency key
        stack.admin,
        stack.coordinator,
        sponsor,
        *revealed,
        SECRET_KEY,
        *data_keys,
    ]
    assert len(caplog.records) > 0, "nothing was logged: the test would pass vacuously"
    assert any(r.levelno == logging.DEBUG for r in caplog.records), "nothing was logged at DEBUG"
    leaked = leaked_records(caplog.records, secrets)
    if leaked:
        pytest.fail("records that hold a canary or a secret:\n" + "\n".join(leaked), pytrace=False)
    assert not leaks(caplog.text, secrets), f"the captured log holds {leaks(caplog.text, secrets)}"


def leaked_records(records: Iterable[logging.LogRecord], secrets: list[str]) -> list[str]:
    """One line per (logger, place in the code, secret): how often, and an excerpt of the first."""
    found: dict[tuple[str, str, str, str], list[Any]] = {}
    for record in records:
        place = f"{record.pathname.rsplit('/', 1)[-1]}:{record.lineno}"
        for secret in {s for text in record_texts(record) for s in leaks(text, secrets)}:
            key = (record.name, record.levelname, place, secret)
            seen = found.setdefault(key, [0, excerpt(record.getMessage(), secret)])
            seen[0] += 1
    return [
        f"{name} {level} ({place}) x{count}: {secret!r} in {text}"
        for (name, level, place, secret), (count, text) in sorted(found.items())
    ]


def excerpt(text: str, secret: str, width: int = 100) -> str:
    at = text.find(secret)
    if at < 0:
        return "(its arguments or exception)"
    return repr(text[max(0, at - width) : at + len(secret) + width])


@pytest.mark.slow
def test_the_worker_and_beat_at_debug_log_no_clinical_value_and_no_secret(
    tmp_path: Path, processes: Processes
) -> None:
    stack = Stack(make_settings(tmp_path, sqlite_url(tmp_path)))
    try:
        start_pipeline(processes, stack, ACCRUAL_LOG_LEVEL="DEBUG")
        ids = []
        for number in (1, 2, 3):
            changes = {"hiv_positive": None} if number == 2 else {}
            response = stack.submit(canary_applicant(number, **changes))
            assert response.status_code == 202, response.get_json()
            ids.append(response.get_json()["id"])
        wait_until(
            lambda: decided(stack, ids), timeout=60, what="decisions: " + processes.log("worker")[-2000:]
        )
        processes.stop_all(LOG_COMPLETE_GRACE_SECONDS)
        logs = {name: processes.log(name) for name in ("worker", "beat")}
        data_keys = [
            entry.partition(":")[2] for entry in stack.settings.data_keyring_text().split(",") if entry
        ]
    finally:
        stack.close()

    secrets = [*VALUE_CANARIES, "LEAK-CANARY", stack.admin, stack.coordinator, SECRET_KEY, *data_keys]
    for name, text in logs.items():
        assert text.strip(), f"the {name} logged nothing"
        if name == "worker":  # the beat has nothing to say at DEBUG; Celery's worker does
            assert "DEBUG" in text, f"the worker logged nothing at DEBUG:\n{text[-2000:]}"
        found = leaks(text, secrets)
        lines = [line for line in text.splitlines() if leaks(line, secrets)]
        assert not found, f"the {name}'s log holds {found}, e.g.:\n" + "\n".join(
            line[:300] for line in lines[:5]
        )
