"""Webhook secrets are sealed at rest with the data keys, like observations, bound to their subscription's
row: a secret copied into another subscription's row does not open there, `accrual keys rotate`
re-seals them under a new key (and deliveries still verify with the same secret), and revision 0012
re-seals the secrets sealed before it (under a key derived from ACCRUAL_SECRET_KEY). On SQLite and
PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from click.testing import Result
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from config import Settings, get_settings
from models.audit import AuditKeys
from models.db import Database
from models.migrate import alembic_config, upgrade
from models.sealing import Keyring, SealingError, keyring_of
from services.notifications.webhooks import claim_due, deliver, lease_for, new_secret, unseal
from tests.support.applicants import eligible_applicant
from tests.support.cli import invoke, stack_env
from tests.support.relay import relay
from tests.support.stack import Stack, database_url_for, make_settings
from tests.support.webhook_receiver import Receiver, receiving
from tests.support.webhooks import pending, subscribe

SECRET_KEY = "test-secret"  # make_settings's ACCRUAL_SECRET_KEY


@pytest.fixture(params=["sqlite", "postgres"])
def hooks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack whose webhooks may go to loopback over http."""
    settings = make_settings(tmp_path, database_url_for(request, tmp_path), webhook_allow_private=True)
    built = Stack(settings)
    yield built
    built.close()


def stored_secret(db: Database, subscription_id: str) -> str:
    """The column as the database holds it."""
    with db.engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT secret_sealed FROM webhook_subscriptions WHERE id = :id"),
                {"id": subscription_id},
            ).scalar_one()
        )


def overwrite_secret(db: Database, subscription_id: str, value: str) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE webhook_subscriptions SET secret_sealed = :value WHERE id = :id"),
            {"value": value, "id": subscription_id},
        )


def _before_0012_cipher(secret_key: str) -> AESGCM:
    return AESGCM(hmac.new(secret_key.encode(), b"accrual webhook secrets", hashlib.sha256).digest())


def sealed_before_0012(secret: str, secret_key: str = SECRET_KEY) -> str:
    """A secret in the format before revision 0012, built by hand from its definition: bare base64 of
    nonce + AES-GCM under HMAC-SHA256(ACCRUAL_SECRET_KEY, "accrual webhook secrets"), data "webhook"."""
    nonce = secrets.token_bytes(12)
    return base64.b64encode(
        nonce + _before_0012_cipher(secret_key).encrypt(nonce, secret.encode(), b"webhook")
    ).decode()


def opened_before_0012(value: str, secret_key: str = SECRET_KEY) -> str:
    raw = base64.b64decode(value)
    return _before_0012_cipher(secret_key).decrypt(raw[:12], raw[12:], b"webhook").decode()


def deliver_due(db: Database, settings: Settings) -> None:
    """Claim and send every due delivery through `db` until none is pending."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with db.transaction() as session:
            due = claim_due(session, lease_for(settings))
        for delivery_id, claim in due:
            deliver(db, delivery_id, claim, settings)
        with db.engine.connect() as connection:
            if not connection.execute(
                text("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
            ).scalar_one():
                return
        time.sleep(0.02)
    raise AssertionError("deliveries still pending")


def verified_by(receiver: Receiver, secret: str) -> list[str]:
    """The event ids of what `receiver` got, each verified with `secret` (raises if one does not)."""
    return [Webhook(secret).verify(r.body, r.headers)["id"] for r in receiver.received]


def accrual_command(stack: Stack, *args: str, data_keys: str = "") -> Result:
    """`accrual ARGS...` in this process, configured as the stack is (its data directory holds the audit
    keys, and the data keys unless `data_keys` gives others)."""
    return invoke(stack_env(stack, ACCRUAL_SECRET_KEY=SECRET_KEY, ACCRUAL_DATA_KEYS=data_keys), *args)


# --- bound to their row ---------------------------------------------------------------------------


def test_a_secret_is_sealed_with_the_data_keys_bound_to_its_row(hooks: Stack) -> None:
    mine, theirs = (subscribe(hooks, "http://127.0.0.1:9/x", ["application.submitted"]) for _ in range(2))
    keyring = keyring_of(hooks.db.engine.dialect)
    sealed = stored_secret(hooks.db, mine["id"])
    assert sealed.startswith(f"v2:{keyring.current}:") and mine["secret"][6:] not in sealed
    assert unseal(keyring, mine["id"], sealed, SECRET_KEY.encode()) == mine["secret"]
    with pytest.raises(SealingError, match=theirs["id"]):
        unseal(keyring, theirs["id"], sealed, SECRET_KEY.encode())


def test_a_secret_copied_from_another_subscriptions_row_does_not_open(hooks: Stack) -> None:
    with receiving() as receiver:
        source = subscribe(hooks, receiver.url, ["trial.status_changed"])
        target = subscribe(hooks, receiver.url, ["application.submitted"])
        overwrite_secret(hooks.db, target["id"], stored_secret(hooks.db, source["id"]))
        assert hooks.submit(eligible_applicant("COPIED-SECRET")).status_code == 202
        relay(hooks)  # writes the deliveries the event is owed
        with hooks.db.transaction() as session:
            [(delivery_id, claim)] = claim_due(session, lease_for(hooks.settings))
        with pytest.raises(SealingError, match=f"secret_sealed of {target['id']}") as refused:
            deliver(hooks.db, delivery_id, claim, hooks.settings)
    assert receiver.received == []  # nothing signed with the other subscription's secret
    assert source["id"] not in str(refused.value) and source["secret"] not in str(refused.value)
    assert pending(hooks) == 1  # not recorded as an attempt: it waits, unsent
    keyring = keyring_of(hooks.db.engine.dialect)
    assert unseal(keyring, source["id"], stored_secret(hooks.db, source["id"]), b"") == source["secret"]


# --- `accrual keys rotate` ------------------------------------------------------------------------


def test_keys_rotate_reseals_webhook_secrets_and_deliveries_verify_with_the_same_secret(hooks: Stack) -> None:
    with receiving() as current_receiver, receiving() as legacy_receiver:
        current = subscribe(hooks, current_receiver.url, ["application.submitted"])
        legacy = subscribe(hooks, legacy_receiver.url, ["application.submitted"])
        # As a row written before revision 0012 (or by a process not yet restarted) holds it.
        overwrite_secret(hooks.db, legacy["id"], sealed_before_0012(legacy["secret"]))
        assert hooks.submit(eligible_applicant("BEFORE-ROTATION")).status_code == 202
        relay(hooks)  # writes the deliveries the event is owed
        deliver_due(hooks.db, hooks.settings)  # the old format still signs meanwhile

        new, old = Keyring.new_entry("k2"), hooks.settings.data_keyring_text()
        rotated = accrual_command(hooks, "keys", "rotate", data_keys=f"{new},{old}")
        assert rotated.exit_code == 0, rotated.output
        assert "webhook secrets re-sealed under the current key: 2" in rotated.output
        assert all(stored_secret(hooks.db, h["id"]).startswith("v2:k2:") for h in (current, legacy))
        again = accrual_command(hooks, "keys", "rotate", data_keys=f"{new},{old}")
        assert "webhook secrets re-sealed under the current key: 0" in again.output, again.output

        # The old data key and ACCRUAL_SECRET_KEY are no longer needed to sign.
        new_only = Database(
            hooks.settings.database_url, Keyring.parse(new), AuditKeys.parse(hooks.settings.audit_keys_text())
        )
        try:
            assert hooks.submit(eligible_applicant("AFTER-ROTATION")).status_code == 202
            relay(hooks)
            deliver_due(new_only, hooks.settings.model_copy(update={"secret_key": "another secret key"}))
        finally:
            new_only.dispose()
    assert len(verified_by(current_receiver, current["secret"])) == 2
    assert len(verified_by(legacy_receiver, legacy["secret"])) == 2


def test_keys_rotate_stops_at_a_secret_moved_from_another_row(hooks: Stack) -> None:
    source, moved = (subscribe(hooks, "http://127.0.0.1:9/x", ["application.submitted"]) for _ in range(2))
    overwrite_secret(hooks.db, moved["id"], stored_secret(hooks.db, source["id"]))
    new, old = Keyring.new_entry("k2"), hooks.settings.data_keyring_text()
    stopped = accrual_command(hooks, "keys", "rotate", data_keys=f"{new},{old}")
    assert (
        stopped.exit_code == 2 and f"webhook_subscriptions.secret_sealed of {moved['id']}" in stopped.output
    )
    assert source["id"] not in stopped.output and source["secret"] not in stopped.output
    assert stored_secret(hooks.db, source["id"]).startswith("v2:k1:")  # its batch was rolled back whole


# --- revision 0012 ---------------------------------------------------------------------------------

SUBSCRIPTION_0011 = (
    "INSERT INTO webhook_subscriptions (id, url, event_types, owner_token_id, secret_sealed, created_at)"
    " VALUES (:id, 'http://127.0.0.1:9/x', '[]', 'tok_1', :secret_sealed, '2026-01-01')"
)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database (no schema yet) with a data keyring."""
    db = Database(database_url_for(request, tmp_path), Keyring.parse(Keyring.new_entry("k1")))
    yield db
    db.dispose()


@pytest.fixture
def configured_secret_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """ACCRUAL_SECRET_KEY as the migrating process reads it (`accrual db upgrade`: the configuration)."""
    monkeypatch.setenv("ACCRUAL_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("ACCRUAL_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield SECRET_KEY
    get_settings.cache_clear()


def database_at_0011_with_secrets(db: Database, secret_keys: dict[str, str]) -> dict[str, str]:
    """A subscription per id of `secret_keys`, its secret sealed as before revision 0012 under that
    ACCRUAL_SECRET_KEY; their secrets by id."""
    upgrade(db, "0011")
    plain = {subscription_id: new_secret() for subscription_id in secret_keys}
    with db.engine.begin() as connection:
        for subscription_id, secret in plain.items():
            sealed = sealed_before_0012(secret, secret_keys[subscription_id])
            connection.execute(text(SUBSCRIPTION_0011), {"id": subscription_id, "secret_sealed": sealed})
    return plain


def revision(db: Database) -> str:
    with db.engine.connect() as connection:
        return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def test_revision_0012_reseals_secrets_bound_to_their_row_and_its_downgrade_restores_the_old_format(
    empty_db: Database, configured_secret_key: str
) -> None:
    db = empty_db
    plain = database_at_0011_with_secrets(
        db, {"whk_A": configured_secret_key, "whk_B": configured_secret_key}
    )
    upgrade(db)
    keyring = keyring_of(db.engine.dialect)
    assert all(stored_secret(db, s).startswith("v2:k1:") for s in plain)
    # Opened with the keyring alone: no longer with ACCRUAL_SECRET_KEY.
    assert {s: unseal(keyring, s, stored_secret(db, s), b"") for s in plain} == plain
    with pytest.raises(SealingError, match="whk_B"):
        unseal(keyring, "whk_B", stored_secret(db, "whk_A"), configured_secret_key.encode())

    cfg = alembic_config(db)
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0011")
    assert {s: opened_before_0012(stored_secret(db, s), configured_secret_key) for s in plain} == plain


def test_revision_0012_with_another_secret_key_stops_naming_the_subscription_and_changes_nothing(
    empty_db: Database, configured_secret_key: str
) -> None:
    db = empty_db
    # whk_A is re-sealed first, then whk_B does not open: the upgrade is one transaction.
    plain = database_at_0011_with_secrets(
        db, {"whk_A": configured_secret_key, "whk_B": "the key of another deployment"}
    )
    before = {s: stored_secret(db, s) for s in plain}
    with pytest.raises(SealingError, match=r"secret_sealed of whk_B: .* ACCRUAL_SECRET_KEY") as refused:
        upgrade(db)
    assert not any(secret in str(refused.value) for secret in plain.values())
    assert revision(db) == "0011" and {s: stored_secret(db, s) for s in plain} == before
