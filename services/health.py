"""Readiness checks: can this process reach its database and its broker?"""

from __future__ import annotations

from kombu import Connection
from sqlalchemy import text

from config.settings import redact_url
from models.db import Database

BROKER_TIMEOUT_SECONDS = 2.0


def check_database(db: Database) -> str | None:
    """None when the database answers, else a one-line reason naming the address."""
    try:
        with db.reading() as session:  # a read: on SQLite it never queues behind a writer
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database at {redact_url(db.url)} unreachable: {type(exc).__name__}"
    return None


def check_broker(broker_url: str) -> str | None:
    """None when the broker accepts a connection, else a one-line reason naming the address."""
    try:
        with Connection(broker_url, connect_timeout=BROKER_TIMEOUT_SECONDS) as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:
        return f"broker at {redact_url(broker_url)} unreachable: {type(exc).__name__}"
    return None
