"""The audit trail as a record of who did what, when, and what it replaced (RELIABILITY.md section 7,
scenarios 14, 43, 46 and 47), on SQLite and PostgreSQL.

14: entries are dated by the database's clock, not the writing process's: a worker whose clock is ten
minutes off still dates its entries right, and each record's entries stay in time order. SQLite is
embedded and has no clock but its process's: there the test checks the order only. Outbound webhook
timestamps come from the sending host's clock, which the deployment keeps NTP-synced (README,
Deployment); that is checked in deployment, not here.
43: every change of an application, its decision, its enrolment, a trial's target and a webhook
endpoint is exactly one entry, with actor, time, action, entity and previous and new values (and the
reason a person gave), written in the change's transaction: a failure after the business write rolls
both back.
46: a correction keeps what it replaced (sealed, in previous_values), so three edits of one field show
v1 -> v2 -> v3, a withdrawn application stays with its reason, and the state rebuilt for any moment
from the trail equals a snapshot taken at that moment.
47: a request's correlation id (X-Request-Id, accepted or made, and answered) is carried through the
outbox into the worker, so the decision's entry and the worker's log lines name the request, and the
entry names the worker process (its service identity) while the submission's names the API process and
the user; every entry of a full lifecycle, by any process, carries a service identity (scenario 37's
"no shared accounts": each process is role@host:pid).
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import func, select, text

import services.audit
from models import Application, AuditEntry, AuditPending, PreviousValues
from models.audit import CHAINED_FIELDS, GENESIS, audit_keys_of, canonical_entry
from models.base import JSONType, UTCDateTime
from models.db import Database
from models.migrate import alembic_config
from models.sealing import Keyring
from services.applications.history import snapshot
from services.audit import REASON_IN_HISTORY, chain_pending_entries
from services.data_keys import reseal_previous_values
from tests.support.applicants import eligible_applicant
from tests.support.applications import post
from tests.support.http import auth
from tests.support.pipeline import start_pipeline
from tests.support.processes import Processes, start_api
from tests.support.screening import decide, screen
from tests.support.servers import free_port
from tests.support.stack import TRIAL, Stack
from tests.support.waiting import wait_until
from tests.support.webhooks import subscribe

LEGACY_CHAINED = [name for name in CHAINED_FIELDS if name not in ("service", "request_id")]


def entries_of(stack: Stack, entity: str, entity_id: str) -> list[AuditEntry]:
    chain_pending_entries(stack.db)
    with stack.db.sessions() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.entity == entity,
                    AuditEntry.entity_id == entity_id,
                    AuditEntry.action != "read",
                )
                .order_by(AuditEntry.seq)
            )
        )


def database_now(stack: Stack) -> datetime:
    """The database server's clock (PostgreSQL), or this process's (SQLite, embedded)."""
    with stack.db.sessions() as session:
        if stack.db.engine.dialect.name == "postgresql":
            moment: datetime = session.execute(text("SELECT clock_timestamp()")).scalar_one()
            return moment.astimezone(UTC)
    return datetime.now(UTC)


def correct(stack: Stack, application_id: str, **observations: Any) -> None:
    response = stack.client.patch(
        f"/api/v1/applications/{application_id}",
        json={"applicant": observations},
        headers=auth(stack.coordinator),
    )
    assert response.status_code == 202, response.get_json()
    screen(stack, application_id)


def history(stack: Stack, application_id: str, at: datetime | None = None) -> Any:
    query = "" if at is None else "?at=" + urllib.request.quote(at.isoformat())
    response = stack.client.get(
        f"/api/v1/applications/{application_id}/history{query}", headers=auth(stack.admin)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()["revisions"]


def row_snapshot(stack: Stack, application_id: str) -> dict[str, Any]:
    with stack.db.sessions() as session:
        return snapshot(session.get_one(Application, application_id))


def test_s46_three_edits_show_every_value_and_the_state_at_any_moment_is_rebuilt(stack: Stack) -> None:
    application_id = decide(stack, screening_id="PREV-1", abi=0.31)
    taken = [(database_now(stack), row_snapshot(stack, application_id))]
    for abi in (0.32, 0.33, 0.34):
        correct(stack, application_id, abi=abi)
        taken.append((database_now(stack), row_snapshot(stack, application_id)))
    renamed = stack.client.patch(
        f"/api/v1/applications/{application_id}",
        json={"screening_id": "PREV-1B"},
        headers=auth(stack.coordinator),
    )
    assert renamed.status_code in (200, 202), renamed.get_json()
    taken.append((database_now(stack), row_snapshot(stack, application_id)))
    assert post(stack, application_id, "withdraw", {"reason": "moved abroad"}).status_code == 200
    taken.append((database_now(stack), row_snapshot(stack, application_id)))

    revisions = history(stack, application_id)
    shown = [revision["state"]["observations"]["abi"] for revision in revisions]
    assert [value for n, value in enumerate(shown) if n == 0 or shown[n - 1] != value] == [
        0.31,
        0.32,
        0.33,
        0.34,
    ]
    assert revisions[0]["state"]["screening_id"] == "PREV-1"  # the earlier pseudonym too
    assert revisions[-1]["state"]["status"] == "withdrawn" and revisions[-1]["action"] == "change"
    for moment, expected in taken:
        assert history(stack, application_id, moment)[0]["state"] == expected, moment
    before = history(stack, application_id)[0]["at"]
    early = datetime.fromisoformat(before) - timedelta(seconds=1)
    missing = stack.client.get(
        f"/api/v1/applications/{application_id}/history?at={urllib.request.quote(early.isoformat())}",
        headers=auth(stack.admin),
    )
    assert missing.status_code == 404  # not yet submitted then
    with stack.db.sessions() as session:
        kept = session.scalars(
            select(PreviousValues).where(PreviousValues.application_id == application_id)
        ).all()
        assert len(kept) == 4  # three corrections and a renaming, each keeping what it replaced
        stored = session.execute(text('SELECT "values" FROM previous_values')).scalars().all()
    assert all("0.31" not in value and "PREV-1" not in value for value in stored)  # sealed at rest
    withdrawal = entries_of(stack, "application", application_id)[-1]
    assert (
        withdrawal.changes["status"][1] == "withdrawn" and withdrawal.changes["reason"] == "other"
    )  # its code
    assert "moved abroad" not in json.dumps(withdrawal.changes)  # free text stays in the history
    # Only an admin reads earlier values; a coordinator is refused.
    refused = stack.client.get(
        f"/api/v1/applications/{application_id}/history", headers=auth(stack.coordinator)
    )
    assert refused.status_code == 403


def test_s43_each_change_is_one_entry_with_its_values_written_with_it(stack: Stack) -> None:
    application_id = decide(stack, screening_id="ONE-1")
    entries = entries_of(stack, "application", application_id)
    assert [e.action for e in entries] == ["create", "change"]
    created, decided = entries
    assert created.actor == decided.actor == "system" or created.actor_role == "coordinator"
    assert decided.changes["status"] == ["submitted", "eligible"]
    assert decided.changes["version"][1] == decided.changes["version"][0] + 1
    assert post(stack, application_id, "enroll", {"reason": "consented"}).status_code == 200
    enrolled = entries_of(stack, "application", application_id)[2:]
    assert len(enrolled) == 1 and enrolled[0].changes["status"] == ["eligible", "enrolled"]
    assert enrolled[0].actor_role == "coordinator" and enrolled[0].changes["reason"] == REASON_IN_HISTORY

    answer = stack.client.patch(
        f"/api/v1/trials/{TRIAL}", json={"enrollment_target": 77}, headers=auth(stack.admin)
    )
    assert answer.status_code == 200, answer.get_json()
    target = entries_of(stack, "trial", TRIAL)[-1]
    assert target.changes["enrollment_target"][1] == 77 and target.actor_role == "admin"
    assert [e.changes.get("enrollment_target") for e in entries_of(stack, "trial", TRIAL)].count(
        target.changes["enrollment_target"]
    ) == 1

    stack.app.extensions["accrual.settings"] = stack.settings.model_copy(
        update={"webhook_allow_private": True}
    )
    webhook_id = subscribe(stack, "http://127.0.0.1:9/hook", ["application.enrolled"])["id"]
    assert stack.client.delete(f"/api/v1/webhooks/{webhook_id}", headers=auth(stack.admin)).status_code in (
        200,
        204,
    )
    assert [e.action for e in entries_of(stack, "webhook", webhook_id)] in (
        ["create", "delete"],
        ["create", "change"],
    )
    for entry in entries_of(stack, "application", application_id):
        assert entry.at.tzinfo is not None and entry.service and entry.actor


def test_s43_a_failure_after_the_business_write_rolls_back_the_entry_too(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    application_id = decide(stack, screening_id="ONE-2")
    before = len(entries_of(stack, "application", application_id))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected after the status was written")

    monkeypatch.setattr("services.applications.transitions.counts.count_change", broken)
    client = stack.app.test_client()
    answer = client.post(
        f"/api/v1/applications/{application_id}/enroll",
        json={"reason": "consented"},
        headers=auth(stack.coordinator),
    )
    assert answer.status_code == 500
    assert "injected" not in answer.get_data(as_text=True)
    with stack.db.sessions() as session:
        assert session.get_one(Application, application_id).status == "eligible"
        assert session.scalar(select(func.count()).select_from(AuditPending)) == 0
    assert len(entries_of(stack, "application", application_id)) == before


def test_s14_entries_are_dated_by_the_database_clock_and_in_order_per_record(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    skewed = datetime.now(UTC) + timedelta(minutes=10)
    if stack.db.engine.dialect.name == "postgresql":
        # This process plays a worker whose clock runs ten minutes fast.
        monkeypatch.setattr(services.audit, "utcnow", lambda: skewed)
    start = database_now(stack)
    application_id = decide(stack, screening_id="CLOCK-1")
    correct(stack, application_id, abi=0.4)
    end = database_now(stack)
    entries = entries_of(stack, "application", application_id)
    assert len(entries) >= 4
    assert [e.at for e in entries] == sorted(e.at for e in entries)  # in time order, as in seq order
    if stack.db.engine.dialect.name == "postgresql":
        assert all(start <= e.at <= end for e in entries), [(e.at, start, end) for e in entries]


def http(base: str, method: str, path: str, token: str, body: Any = None, **headers: str) -> tuple[Any, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={**auth(token), "Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers, json.loads(response.read())


def test_s47_a_workers_decision_leads_back_to_the_request_and_the_user(
    stack: Stack, processes: Processes
) -> None:
    base = start_api(processes, stack.env(), free_port())
    start_pipeline(processes, stack, ACCRUAL_LOG_LEVEL="INFO")
    correlation = "s47-lifecycle-0001"
    headers, body = http(
        base, "POST", "/api/v1/applications", stack.coordinator,
        {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant("S47-1")},
        **{"X-Request-Id": correlation},
    )  # fmt: skip
    assert headers["X-Request-Id"] == correlation
    application_id = body["id"]
    wait_until(lambda: len(entries_of(stack, "application", application_id)) >= 2, 60, what="the decision")
    _, page = http(base, "GET", f"/api/v1/audit?request_id={correlation}", stack.admin)
    caused = [entry for entry in page["items"] if entry["entity_id"] == application_id]
    submitted, decided = caused[0], caused[-1]
    assert submitted["action"] == "create" and submitted["actor_role"] == "coordinator"
    assert submitted["service"].startswith("api@")
    assert decided["changes"]["status"][0] == "submitted" and decided["service"].startswith("worker@")
    assert decided["actor"] == "system" and decided["service"] != submitted["service"]
    wait_until(lambda: correlation in processes.log("worker"), 30, what="the worker's log line")
    # A client's id that is not a plain token is replaced by one of ours, never echoed.
    odd, _ = http(base, "GET", "/api/v1/vocabulary", stack.coordinator, **{"X-Request-Id": "a b\u00e9"})
    assert odd["X-Request-Id"] != "a b\u00e9" and len(odd["X-Request-Id"]) == 32
    chain_pending_entries(stack.db)
    with stack.db.sessions() as session:
        anonymous = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.service.is_(None))
        )
    assert anonymous == 0  # scenario 37: every entry names the process that wrote it


def test_entries_chained_before_revision_0024_hash_as_they_did() -> None:
    legacy = {
        "seq": 1, "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "actor": "tok_1", "actor_role": "admin",
        "entity": "trial", "entity_id": TRIAL, "action": "change", "changes": {"enrollment_target": [1, 2]},
        "prev_hash": "0" * 64, "key_id": "k1",
    }  # fmt: skip
    as_then = json.dumps(
        {**legacy, "at": legacy["at"].isoformat()}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert canonical_entry({**legacy, "service": None, "request_id": None}) == as_then
    assert canonical_entry({**legacy, "service": "api@h:1", "request_id": None}) != as_then


def test_a_downgrade_below_0024_rechains_the_trail_so_it_still_verifies(stack: Stack) -> None:
    application_id = decide(stack, screening_id="DOWN-1")
    correct(stack, application_id, abi=0.45)
    assert entries_of(stack, "application", application_id)[-1].service  # entries that name a process
    config = alembic_config(stack.db)
    with stack.db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0023")
    keys = audit_keys_of(stack.db.engine.dialect)
    typed = sa.table(
        "audit_entries",
        *(sa.column(name, {"at": UTCDateTime(), "changes": JSONType}.get(name)) for name in LEGACY_CHAINED),
        sa.column("hash"),
    )
    previous, count = GENESIS, 0
    with stack.db.engine.connect() as connection:
        for row in connection.execute(sa.select(typed).order_by(typed.c.seq)).mappings():
            count += 1
            entry = {**row, "service": None, "request_id": None}  # as revision 0023's code hashes it
            assert row["prev_hash"] == previous and keys.entry_hash(entry) == row["hash"], row["seq"]
            previous = row["hash"]
        last = connection.execute(sa.text("SELECT last_seq, last_hash FROM audit_head")).one()
    assert (last.last_seq, last.last_hash) == (count, previous) and count > 3


def test_the_values_a_correction_replaced_are_resealed_by_a_key_rotation(stack: Stack) -> None:
    application_id = decide(stack, screening_id="ROT-PREV", abi=0.36)
    correct(stack, application_id, abi=0.37)
    old, new = stack.settings.data_keyring_text(), Keyring.new_entry("k2")
    rotated = Database(
        stack.settings.database_url, Keyring.parse(f"{new},{old}"), audit_keys_of(stack.db.engine.dialect)
    )
    new_only = Database(stack.settings.database_url, Keyring.parse(new))
    try:
        assert reseal_previous_values(rotated) == 1 and reseal_previous_values(rotated) == 0
        with new_only.sessions() as session:  # the old key can now be dropped
            [kept] = session.scalars(select(PreviousValues)).all()
            assert kept.values["observations"]["abi"] == 0.36
    finally:
        rotated.dispose()
        new_only.dispose()
