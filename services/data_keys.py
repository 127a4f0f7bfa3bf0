"""Key rotation for what is sealed at rest (see models.sealing): observations and the values corrections
replaced, screenings' results, webhook secrets, and randomisation's arms, seeds and state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Text, select, type_coerce, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from models import (
    Allocation,
    Application,
    PreviousValues,
    RandomisationScheme,
    Screening,
    WebhookSubscription,
)
from models.application import observations_binding, previous_values_binding, results_binding
from models.db import Database
from models.randomisation import allocation_binding, scheme_secret_binding, scheme_state_binding
from models.sealing import Keyring, Sealed, SealingError, keyring_of
from services.audit import note
from services.notifications.webhooks import seal, unseal


@dataclass(frozen=True)
class SealedColumn:
    """A column sealed per row (models.sealing.seal_per_row): where it is, and how its row is named."""

    entity: str  # as the audit trail names it
    column: InstrumentedAttribute[Any]
    row_key: tuple[InstrumentedAttribute[Any], ...]  # the binding's `/`-joined row name
    binding: Callable[[str], bytes]

    @property
    def stored_text(self) -> ColumnElement[str]:
        """The column as stored, not opened."""
        return type_coerce(self.column, Text)


OBSERVATIONS = SealedColumn("application", Application.observations, (Application.id,), observations_binding)
PREVIOUS_VALUES = SealedColumn(
    "previous_values", PreviousValues.values, (PreviousValues.id,), previous_values_binding
)
SCREENING_RESULTS = SealedColumn(
    "screening", Screening.results, (Screening.application_id, Screening.round), results_binding
)


# Randomisation (models.randomisation): the allocations' arms and strata, the schemes' seeds and state.
RANDOMISATION = (
    SealedColumn("allocation", Allocation.sealed, (Allocation.application_id,), allocation_binding),
    SealedColumn(
        "randomisation_scheme",
        RandomisationScheme.secret,
        (RandomisationScheme.trial_id,),
        scheme_secret_binding,
    ),
    SealedColumn(
        "randomisation_scheme",
        RandomisationScheme.state,
        (RandomisationScheme.trial_id,),
        scheme_state_binding,
    ),
)


def reseal_randomisation(db: Database, batch: int = 500) -> int:
    """Re-seal every allocation and every scheme's seed and state not sealed under the current key."""
    return sum(reseal(db, sealed, batch) for sealed in RANDOMISATION)


def reseal_observations(db: Database, batch: int = 500) -> int:
    """Re-seal, under the current key and bound to their row, every application's observations that
    are not yet (an older key, or the v1 format); how many were. Raises SealingError naming the first
    application whose observations do not open; the batches before it stay re-sealed."""
    return reseal(db, OBSERVATIONS, batch)


def reseal_previous_values(db: Database, batch: int = 500) -> int:
    """Re-seal every kept previous value (what a correction replaced) not sealed under the current key."""
    return reseal(db, PREVIOUS_VALUES, batch)


def reseal_screening_results(db: Database, batch: int = 500) -> int:
    """Re-seal every screening's per-criterion results not sealed under the current key; how many were."""
    return reseal(db, SCREENING_RESULTS, batch)


def reseal(db: Database, sealed: SealedColumn, batch: int = 500) -> int:
    """Re-seal, under the current key, every value of `sealed` that is not yet; how many were."""
    keyring = keyring_of(db.engine.dialect)
    total = 0
    while True:
        with db.transaction() as session:
            rows = session.execute(
                select(sealed.stored_text, *sealed.row_key)
                .where(sealed.stored_text.not_like(f"{keyring.current_prefix}%"))
                .order_by(*sealed.row_key)
                .limit(batch)
            ).all()
            resealed = sum(_reseal(session, keyring, sealed, text, tuple(key)) for text, *key in rows)
            if resealed:
                note(session, sealed.entity, "*", "reseal", {"count": resealed, "key": keyring.current})
        total += resealed
        if len(rows) < batch:
            return total


def _reseal(session: Session, keyring: Keyring, sealed: SealedColumn, text: str, key: tuple[Any, ...]) -> int:
    row_name = "/".join(str(part) for part in key)
    bound_to = sealed.binding(row_name)
    try:
        value = keyring.open(text, bound_to)
    except SealingError as exc:  # the row's name, never the value
        raise SealingError(f"{sealed.column.expression} of {row_name}: {exc}") from None
    table = sealed.column.class_
    result = session.execute(
        update(table)
        # Only if unchanged since read: a value written meanwhile is already sealed anew.
        .where(*(column == part for column, part in zip(sealed.row_key, key, strict=True)))
        .where(sealed.stored_text == text)
        .values({sealed.column.key: Sealed(value, keyring.seal(value, bound_to))})
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
