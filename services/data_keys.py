"""Key rotation for what is sealed at rest (see models.sealing): observations and webhook secrets."""

from __future__ import annotations

from sqlalchemy import Text, select, type_coerce, update
from sqlalchemy.orm import Session

from models import Application, WebhookSubscription
from models.application import observations_binding
from models.db import Database
from models.sealing import Keyring, Sealed, SealingError, keyring_of
from services.audit import note
from services.notifications.webhooks import seal, unseal

stored_text = type_coerce(Application.observations, Text)  # the column as stored, not opened


def reseal_observations(db: Database, batch: int = 500) -> int:
    """Re-seal, under the current key and bound to their row, every application's observations that
    are not yet (an older key, or the v1 format); how many were. Raises SealingError naming the first
    application whose observations do not open; the batches before it stay re-sealed."""
    keyring = keyring_of(db.engine.dialect)
    total = 0
    while True:
        with db.transaction() as session:
            rows = session.execute(
                select(Application.id, stored_text)
                .where(stored_text.not_like(f"{keyring.current_prefix}%"))
                .order_by(Application.id)
                .limit(batch)
            ).all()
            resealed = sum(_reseal(session, keyring, application_id, text) for application_id, text in rows)
            if resealed:
                note(session, "application", "*", "reseal", {"count": resealed, "key": keyring.current})
        total += resealed
        if len(rows) < batch:
            return total


def _reseal(session: Session, keyring: Keyring, application_id: str, text: str) -> int:
    bound_to = observations_binding(application_id)
    try:
        value = keyring.open(text, bound_to)
    except SealingError as exc:  # the id, never the value
        raise SealingError(f"applications.observations of {application_id}: {exc}") from None
    result = session.execute(
        update(Application)
        # Only if unchanged since read: a correction committed meanwhile is already sealed anew.
        .where(Application.id == application_id, stored_text == text)
        .values(observations=Sealed(value, keyring.seal(value, bound_to)))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def reseal_webhook_secrets(db: Database, secret_key: bytes, batch: int = 500) -> int:
    """Re-seal, under the current key and bound to their row, every webhook subscription's secret that is
    not yet (an older key, or the format before revision 0012, which opens with `secret_key`, from
    ACCRUAL_SECRET_KEY); how many were. Raises SealingError naming the first subscription whose secret
    does not open; the batches before it stay re-sealed."""
    keyring = keyring_of(db.engine.dialect)
    total = 0
    while True:
        with db.transaction() as session:
            rows = session.execute(
                select(WebhookSubscription.id, WebhookSubscription.secret_sealed)
                .where(WebhookSubscription.secret_sealed.not_like(f"{keyring.current_prefix}%"))
                .order_by(WebhookSubscription.id)
                .limit(batch)
            ).all()
            resealed = sum(
                _reseal_secret(session, keyring, secret_key, subscription_id, text)
                for subscription_id, text in rows
            )
            if resealed:
                note(session, "webhook", "*", "reseal", {"count": resealed, "key": keyring.current})
        total += resealed
        if len(rows) < batch:
            return total


def _reseal_secret(
    session: Session, keyring: Keyring, secret_key: bytes, subscription_id: str, text: str
) -> int:
    secret = unseal(keyring, subscription_id, text, secret_key)  # raises naming the subscription only
    result = session.execute(
        update(WebhookSubscription)
        .where(WebhookSubscription.id == subscription_id, WebhookSubscription.secret_sealed == text)
        .values(secret_sealed=seal(keyring, subscription_id, secret))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
