"""The service's state for one test: a migrated, seeded database, its settings, tokens and a client."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI

from config import Settings
from models import Role, Site
from models.db import Database
from models.migrate import upgrade
from services.app import create_app
from services.tokens import create_token
from services.trials.seed import seed
from tests.support.templates import TEMPLATES

TRIAL = "NCT06359912"


class Stack:
    """A migrated, seeded database with its settings, tokens and a Flask test client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        cloned = TEMPLATES.clone_into(settings)
        self.db = Database.for_settings(settings)
        if not cloned:
            upgrade(self.db)
        with self.db.transaction() as session:
            if not cloned:
                seed(session)
            self.site_id = session.query(Site).filter_by(trial_id=TRIAL).order_by(Site.name).first().site_id  # type: ignore[union-attr]
            self.admin = create_token(session, Role.ADMIN)
            self.coordinator = create_token(session, Role.COORDINATOR, [self.site_id])

    @functools.cached_property
    def app(self) -> OpenAPI:
        """The Flask app, built on first use: many tests only need the database."""
        return create_app(self.settings, self.db)

    @functools.cached_property
    def client(self) -> FlaskClient:
        """A test client of the app."""
        return self.app.test_client()

    def env(self) -> dict[str, str]:
        """Environment for a child process (worker, beat, serve) sharing this stack's state."""
        return {
            **os.environ,
            "ACCRUAL_DATA_DIR": str(self.settings.data_dir),
            "ACCRUAL_DATABASE_URL": self.settings.database_url,
            "ACCRUAL_BROKER_URL": self.settings.broker_url,
            "ACCRUAL_SECRET_KEY": "test-secret",
            "ACCRUAL_LOG_LEVEL": "WARNING",
            "ACCRUAL_WORKER_CONCURRENCY": "2",
        }

    def submit(self, applicant: dict[str, Any], token: str | None = None, **headers: str) -> Any:
        """POST one applicant to the seeded trial's first site, as its coordinator unless told."""
        return self.client.post(
            "/api/v1/applications",
            json={"trial_id": TRIAL, "site_id": self.site_id, "applicant": applicant},
            headers={"Authorization": f"Bearer {token or self.coordinator}", **headers},
        )

    def close(self) -> None:
        """Release the database's connections."""
        self.db.dispose()


# Tests send many requests from one address; the rate-limit tests set their own, low limits.
GENEROUS_LIMITS = {
    "rate_limit_intake_per_token": "100000/minute",
    "rate_limit_intake_per_address": "100000/minute",
    "rate_limit_auth_failures": "100000/minute",
}
# Tests read /metrics right after a change; tests/integration/test_metrics_access.py tests the caching.
FRESH_METRICS = {"metrics_cache_seconds": 0}


def make_settings(data_dir: Path, database_url: str, broker_url: str = "", **overrides: Any) -> Settings:
    """Settings for a test: its own data directory and database, generous limits, fresh metrics."""
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=broker_url,
        secret_key="test-secret",
        **{**GENEROUS_LIMITS, **FRESH_METRICS, **overrides},
    )


def sqlite_url(directory: Path) -> str:
    """A new SQLite database file in `directory`."""
    return f"sqlite:///{directory / 'accrual.db'}"


def database_url_for(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database a fixture parametrised "sqlite"/"postgres" asks for: a new SQLite file, or a new,
    empty PostgreSQL database (the pg_url fixture's)."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("pg_url"))
