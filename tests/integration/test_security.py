"""Tokens that expire and are revoked, the hash-chained audit trail, rate limits, security headers,
and clinical data sealed at rest: each tried against an attempt to break it."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Text, func, select, text, type_coerce

from models import Application, AuditEntry
from models.audit import AuditKeys
from models.base import utcnow
from models.db import Database
from models.migrate import upgrade
from models.sealing import Keyring, SealingError
from services.audit import chain_pending_entries, verify_chain
from services.data_keys import reseal_observations
from services.tokens import Role, create_token, list_tokens, revoke_token
from tests.support.applicants import eligible_applicant
from tests.support.applications import post
from tests.support.http import assert_problem, auth
from tests.support.screening import decide
from tests.support.servers import RedisServer
from tests.support.stack import TRIAL, Stack, make_settings, sqlite_url

CANARY = "SEALED-CANARY-4711"
BEFORE_SEALING = (
    "INSERT INTO trials (trial_id, title, sponsor, phases, conditions, keywords, overall_status, sex,"
    " registry_record, enrolled_count, created_at, updated_at) VALUES ('T1', 't', 's', '[]', '[]', '[]',"
    " 'RECRUITING', 'ALL', '{}', 0, '2026-01-01', '2026-01-01')",
    "INSERT INTO sites (site_id, trial_id, name, status, enrolled_count, created_at)"
    " VALUES ('S1', 'T1', 'n', 'RECRUITING', 0, '2026-01-01')",
    "INSERT INTO applications (id, trial_id, site_id, screening_id, status, observations, screening_round,"
    " screening_deliveries, submitted_at, version) VALUES ('A1', 'T1', 'S1', 'X', 'submitted',"
    " '{\"abi\": 0.42}', 1, 0, '2026-01-01', 1)",
)


# --- tokens ---------------------------------------------------------------------------------------


def test_an_expired_token_is_refused(stack: Stack) -> None:
    with stack.db.transaction() as session:
        soon = create_token(session, Role.ADMIN, expires_at=utcnow() + timedelta(hours=1))
        gone = create_token(session, Role.ADMIN, expires_at=utcnow() - timedelta(seconds=1))
    assert stack.client.get("/api/v1/trials", headers=auth(soon)).status_code == 200
    refused = assert_problem(stack.client.get("/api/v1/trials", headers=auth(gone)), 401)
    assert "expired" in refused["detail"]


def test_revocation_takes_effect_on_the_next_request(stack: Stack) -> None:
    with stack.db.transaction() as session:
        token = create_token(session, Role.ADMIN, name="to be revoked")
    assert stack.client.get("/api/v1/trials", headers=auth(token)).status_code == 200
    with stack.db.transaction() as session:
        row = next(t for t in list_tokens(session) if t.name == "to be revoked")
        revoke_token(session, row.id)
    assert_problem(stack.client.get("/api/v1/trials", headers=auth(token)), 401)
    with stack.db.sessions() as session:
        stored = {t.token_hash for t in list_tokens(session)}
    assert token not in str(stored) and all(len(h) == 64 for h in stored)  # hashes only


# --- the audit trail ------------------------------------------------------------------------------


def entries(stack: Stack, **query: Any) -> list[dict[str, Any]]:
    response = stack.client.get("/api/v1/audit", query_string=query, headers=auth(stack.admin))
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def test_changes_and_reads_are_audited_with_who_what_and_the_values_that_changed(stack: Stack) -> None:
    application = decide(stack, screening_id=CANARY)
    stack.client.get(f"/api/v1/applications/{application}", headers=auth(stack.coordinator))
    post(stack, application, "enroll")
    trail = entries(stack, entity="application", id=application)
    actions = [(e["action"], e["actor_role"]) for e in trail]
    assert actions[0] == ("create", "coordinator")
    assert ("change", "system") in actions  # the worker's decision
    assert ("read", "coordinator") in actions
    enrolled = next(e for e in trail if e["changes"].get("status", [None, None])[1] == "enrolled")
    assert (
        enrolled["changes"]["status"] == ["eligible", "enrolled"] and enrolled["actor_role"] == "coordinator"
    )
    created = trail[0]["changes"]
    assert created["screening_id"] == "[redacted]" and "changed_keys" in created["observations"]
    with stack.db.sessions() as session:
        everything = json.dumps([e.changes for e in session.scalars(select(AuditEntry))])
    assert CANARY not in everything and "1955" not in everything  # no screening id, no observation value


def test_only_admins_read_the_trail(stack: Stack) -> None:
    assert_problem(stack.client.get("/api/v1/audit", headers=auth(stack.coordinator)), 403)
    assert_problem(stack.client.get("/api/v1/audit"), 401)
    first = entries(stack, limit=2)
    rest = stack.client.get(
        "/api/v1/audit", query_string={"after": first[-1]["seq"]}, headers=auth(stack.admin)
    ).get_json()["items"]
    assert [e["seq"] for e in first] == [1, 2] and rest[0]["seq"] == 3


def test_the_chain_verifies_and_every_entry_links_to_the_one_before(stack: Stack) -> None:
    decide(stack, screening_id="A")
    chain_pending_entries(stack.db)  # what the scheduler does after each pass
    with stack.db.sessions() as session:
        verdict = verify_chain(session)
        rows = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    assert verdict.intact and verdict.entries == len(rows) > 5
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1", "DELETE FROM audit_entries WHERE seq = 1"],
)
def test_s45_the_database_refuses_to_change_or_delete_an_entry(stack: Stack, statement: str) -> None:
    """Scenario 45: the service connects as one database role, so the append-only triggers are the
    guard for it and for any other role short of the owner; the owner is caught by the chain (below)."""
    chain_pending_entries(stack.db)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), stack.db.transaction() as session:
        session.execute(text(statement))
    with stack.db.sessions() as session:
        assert verify_chain(session).intact


def test_truncating_the_trail_is_refused_on_postgresql(pg_stack: Stack) -> None:
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), pg_stack.db.transaction() as session:
        session.execute(text("TRUNCATE audit_entries"))


def _bypass_append_only(db: Database, statement: str) -> None:
    """What only someone with the database owner's powers could do: the chain must still tell."""
    with db.engine.begin() as connection:
        if db.is_sqlite:
            connection.execute(text("DROP TRIGGER audit_entries_no_update"))
            connection.execute(text("DROP TRIGGER audit_entries_no_delete"))
        else:
            connection.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
        connection.execute(text(statement))


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3", "entry 3 was altered"),
        ("DELETE FROM audit_entries WHERE seq = 4", "entry 4 is missing"),
        ("DELETE FROM audit_entries WHERE seq = (SELECT max(seq) FROM audit_entries)", "head says"),
    ],
)
def test_s45_an_edit_or_a_gap_made_behind_the_triggers_breaks_the_chain(
    stack: Stack, statement: str, problem: str
) -> None:
    decide(stack, screening_id="A")
    chain_pending_entries(stack.db)
    _bypass_append_only(stack.db, statement)
    with stack.db.sessions() as session:
        verdict = verify_chain(session)
    assert not verdict.intact and problem in str(verdict.problem)


# --- rate limits and headers ----------------------------------------------------------------------


@pytest.fixture
def limited(tmp_path: Path) -> Any:
    settings = make_settings(
        tmp_path,
        sqlite_url(tmp_path),
        rate_limit_intake_per_token="3/minute",
        rate_limit_auth_failures="5/minute",
    )
    built = Stack(settings)
    yield built
    built.close()


def test_intake_beyond_the_tokens_limit_gets_429_with_retry_after(limited: Stack) -> None:
    answers = [limited.submit(eligible_applicant(f"R{n}")) for n in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    problem = assert_problem(answers[-1], 429)
    assert int(answers[-1].headers["Retry-After"]) >= 1 and "at most 3 per 1 minute" in problem["detail"]
    with limited.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 3  # nothing half-written
    with limited.db.transaction() as session:
        other = create_token(session, Role.COORDINATOR, [limited.site_id])
    assert limited.submit(eligible_applicant("OTHER"), token=other).status_code == 202  # per token


def test_s42_guessed_tokens_are_throttled_and_big_lists_are_capped(limited: Stack) -> None:
    for _ in range(5):
        assert_problem(limited.client.get("/api/v1/trials", headers=auth("acr_guess")), 401)
    locked = limited.client.get("/api/v1/trials", headers=auth("acr_guess"))
    assert_problem(locked, 429)
    assert int(locked.headers["Retry-After"]) >= 1
    # Only the guesses wait: a valid token from the same address passes (see test_auth_lockout.py).
    assert limited.client.get("/api/v1/trials", headers=auth(limited.admin)).status_code == 200
    # A page holds at most 200 applications, 1000 events or audit entries: a bigger one is refused.
    for path, most in (("/api/v1/applications", 200), ("/api/v1/events", 1000), ("/api/v1/audit", 1000)):
        too_many = limited.client.get(f"{path}?limit={most + 1}", headers=auth(limited.admin))
        assert_problem(too_many, 422, "limit")
        assert limited.client.get(f"{path}?limit={most}", headers=auth(limited.admin)).status_code == 200


def test_intake_passes_when_the_limits_store_is_down_and_tries_it_again_later(
    private_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url(tmp_path),
        rate_limit_storage_url=private_redis.url,
        rate_limit_intake_per_token="2/minute",
    )
    stack = Stack(settings)
    try:
        limits = stack.app.extensions["accrual.rate_limits"]
        calls = 0

        def counting(method: Any) -> Any:
            def call(*args: Any) -> bool:
                nonlocal calls
                calls += 1
                return bool(method(*args))

            return call

        for name in ("hit", "test"):
            monkeypatch.setattr(limits.limiter, name, counting(getattr(limits.limiter, name)))
        private_redis.stop()
        answers = [stack.submit(eligible_applicant(f"DOWN{n}")).status_code for n in range(6)]
        assert answers == [202] * 6  # fail open: intake keeps answering beyond the limit
        assert calls == 1  # one failed call opens the breaker; every later check skips the store
        private_redis.start()
        monkeypatch.setattr(limits, "store_down_until", 0.0)  # the retry window has passed
        answers = [stack.submit(eligible_applicant(f"UP{n}")).status_code for n in range(3)]
        assert answers == [202, 202, 429]  # enforced again once the store answers
    finally:
        stack.close()


def test_every_answer_carries_the_security_headers(stack: Stack) -> None:
    for response in (
        stack.client.get("/api/v1/trials", headers=auth(stack.admin)),
        stack.client.get("/api/v1/nowhere", headers=auth(stack.admin)),
        stack.client.get(f"/api/v1/public/trials/{TRIAL}"),
        stack.client.post(
            "/api/v1/applications",
            data="{",
            headers={**auth(stack.coordinator), "Content-Type": "application/json"},
        ),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        body = response.get_data(as_text=True)
        assert "Traceback" not in body and "sqlalchemy" not in body.lower()


# --- clinical data sealed at rest -----------------------------------------------------------------


def raw_observations(db: Database) -> list[str]:
    with db.sessions() as session:
        return list(session.scalars(select(type_coerce(Application.observations, Text))))


def test_a_dump_of_the_database_shows_no_observation(stack: Stack) -> None:
    application = stack.submit(eligible_applicant(CANARY, birth_date="1951-03-17")).get_json()["id"]
    [sealed] = raw_observations(stack.db)
    assert sealed.startswith("v2:k1:") and "1951" not in sealed and "birth_date" not in sealed
    read = stack.client.get(f"/api/v1/applications/{application}", headers=auth(stack.coordinator))
    assert read.get_json()["observations"]["birth_date"] == "1951-03-17"
    stranger = Database(stack.settings.database_url, Keyring.parse(Keyring.new_entry("k1")))
    with pytest.raises(SealingError), stranger.sessions() as session:
        session.get(Application, application)
    stranger.dispose()


def test_rotation_reseals_every_application_under_the_new_key(stack: Stack) -> None:
    for n in range(3):
        stack.submit(eligible_applicant(f"ROT-{n}"))
    old, new = stack.settings.data_keyring_text(), Keyring.new_entry("k2")
    audit_keys = AuditKeys.parse(stack.settings.audit_keys_text())  # re-sealing is audited
    rotated = Database(stack.settings.database_url, Keyring.parse(f"{new},{old}"), audit_keys)
    new_only = Database(stack.settings.database_url, Keyring.parse(new))
    try:
        assert reseal_observations(rotated, batch=2) == 3
        assert all(value.startswith("v2:k2:") for value in raw_observations(rotated))
        assert reseal_observations(rotated) == 0
        with new_only.sessions() as session:  # the old key can now be dropped
            assert len([a.observations for a in session.scalars(select(Application))]) == 3
    finally:
        rotated.dispose()
        new_only.dispose()


def test_applications_from_before_sealing_are_sealed_by_the_migration(tmp_path: Path) -> None:
    keyring = Keyring.parse(Keyring.new_entry("k1"))
    db = Database(f"sqlite:///{tmp_path / 'old.db'}", keyring)
    upgrade(db, "0006")
    with db.engine.begin() as connection:
        for statement in BEFORE_SEALING:
            connection.execute(text(statement))
    upgrade(db)
    [sealed] = raw_observations(db)
    assert sealed.startswith("v2:k1:") and "0.42" not in sealed
    with db.sessions() as session:
        assert session.get_one(Application, "A1").observations == {"abi": 0.42}
    db.dispose()
