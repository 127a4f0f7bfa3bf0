"""The database handle of a worker or relay process, made after the fork and reused by its tasks."""

from __future__ import annotations

import os

from config import Settings
from models.db import Database

_databases: dict[tuple[int, str], Database] = {}


def database_for(settings: Settings) -> Database:
    """One Database per (process, URL): a prefork child must not reuse its parent's connections."""
    key = (os.getpid(), settings.database_url)
    if key not in _databases:
        _databases[key] = Database.for_settings(settings)
    return _databases[key]
