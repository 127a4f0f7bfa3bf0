"""Key rotation for clinical data sealed at rest (see models.sealing)."""

from __future__ import annotations

from sqlalchemy import Text, select, type_coerce, update

from models import Application
from models.db import Database
from models.sealing import keyring_of
from services.audit import note


def reseal_observations(db: Database, batch: int = 500) -> int:
    """Re-seal every application's observations still sealed under an older key; how many were."""
    keyring = keyring_of(db.engine.dialect)
    current = f"v1:{keyring.current}:"
    raw = type_coerce(Application.observations, Text)
    total = 0
    while True:
        with db.transaction() as session:
            rows = session.execute(
                select(Application.id, raw).where(raw.not_like(f"{current}%")).limit(batch)
            ).all()
            for application_id, sealed in rows:
                session.execute(
                    update(Application)
                    .where(Application.id == application_id)
                    .values(observations=keyring.open(sealed))  # sealed again, under the current key
                    .execution_options(synchronize_session=False)
                )
            if rows:
                note(session, "application", "*", "reseal", {"count": len(rows), "key": keyring.current})
        total += len(rows)
        if len(rows) < batch:
            return total
