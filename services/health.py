"""Readiness checks: can this process reach its database and its broker?"""

from __future__ import annotations

import socket
import sqlite3
from contextlib import closing
from urllib.parse import urlsplit

import redis
from sqlalchemy import text

from config.settings import EMBEDDED_BROKER_SCHEME, redact_url
from models.db import Database

BROKER_TIMEOUT_SECONDS = 2.0
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


def check_database(db: Database) -> str | None:
    """None when the database answers, else a one-line reason naming the address."""
    try:
        with db.reading() as session:  # a read: on SQLite it never queues behind a writer
            session.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database at {redact_url(db.url)} unreachable: {type(exc).__name__}"
    return None


def check_broker(broker_url: str) -> str | None:
    """None when the broker accepts a connection, else a one-line reason naming the address.

    Probed with the broker's own client, not kombu: the HTTP edge never loads the queueing library.
    """
    try:
        _probe(broker_url)
    except Exception as exc:
        return f"broker at {redact_url(broker_url)} unreachable: {type(exc).__name__}"
    return None


def _probe(broker_url: str) -> None:
    parts = urlsplit(broker_url)
    if parts.scheme in ("redis", "rediss"):
        client = redis.Redis.from_url(
            broker_url, socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()
    elif parts.scheme == EMBEDDED_BROKER_SCHEME:
        # kombu's SQLAlchemy transport over a SQLite file: the file opens (or can be made) and answers.
        path = broker_url.split(":///", 1)[1]
        with closing(sqlite3.connect(path, timeout=BROKER_TIMEOUT_SECONDS)) as database:
            database.execute("SELECT 1")
    else:  # any other transport: its server accepts a TCP connection
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        if not parts.hostname or port is None:
            raise ValueError("no host and port to reach")
        socket.create_connection((parts.hostname, port), timeout=BROKER_TIMEOUT_SECONDS).close()
