"""Migrated, seeded template databases, built once per test process and cloned for each Stack."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import make_url

from config import Settings
from models.db import Database
from models.migrate import upgrade
from services.trials.seed import seed
from tests.support.servers import PG_ADMIN_URL, UNMADE_PG_DATABASES, pg_admin_execute, pg_database_url


class Templates:
    """Migrated, seeded databases built once per test process and cloned for each Stack.

    Migrating and seeding cost a few hundred milliseconds a test; a clone costs a file copy on SQLite and
    `CREATE DATABASE ... TEMPLATE` on PostgreSQL. One template per distinct settings (keys and other
    values may change what is stored), each with the files its data directory got (generated keys).
    """

    def __init__(self) -> None:
        self.built: dict[tuple[str, str], Path] = {}
        self.pg_databases: list[str] = []

    @staticmethod
    def _key(settings: Settings, kind: str) -> tuple[str, str]:
        own = ("data_dir", "database_url", "broker_url")
        values = {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in settings
            if name not in own
        }
        return kind, json.dumps(values, sort_keys=True, default=str)

    def _build(self, settings: Settings, kind: str) -> Path:
        workdir = Path(tempfile.mkdtemp(prefix="accrual-template-"))
        if kind == "sqlite":
            url = f"sqlite:///{workdir / 'template.db'}"
        else:
            name = f"accrual_test_template_{os.getpid()}_{secrets.token_hex(4)}"
            pg_admin_execute(f'CREATE DATABASE "{name}"')
            self.pg_databases.append(name)
            url = pg_database_url(name)
            (workdir / "template.pg").write_text(name)
        template = settings.model_copy(update={"data_dir": workdir / "data", "database_url": url})
        db = Database.for_settings(template)
        try:
            upgrade(db)
            with db.transaction() as session:
                seed(session)
        finally:
            db.dispose()  # a PostgreSQL template must have no connection when it is cloned
        return workdir

    def _template(self, settings: Settings, kind: str) -> Path:
        key = self._key(settings, kind)
        if key not in self.built:
            self.built[key] = self._build(settings, kind)
        return self.built[key]

    def clone_into(self, settings: Settings) -> bool:
        """Give `settings`' empty database the template's content; False when it cannot be cloned (a
        database that is not a test's fresh one, or not empty), and the caller migrates and seeds."""
        url = make_url(settings.database_url)
        if url.drivername.startswith("sqlite"):
            target = Path(url.database or "")
            if not url.database or target.exists():
                return False
            template = self._template(settings, "sqlite")
            shutil.copyfile(template / "template.db", target)
        else:
            admin = make_url(PG_ADMIN_URL)
            name = url.database or ""
            if (url.host, url.port) != (admin.host, admin.port) or not name.startswith("accrual_test_"):
                return False
            template = self._template(settings, "postgres")
            source = (template / "template.pg").read_text()
            if name not in UNMADE_PG_DATABASES:  # pg_url made it, empty: it makes way for the clone
                pg_admin_execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            UNMADE_PG_DATABASES.discard(name)
            pg_admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        self._copy_data_files(template / "data", settings.data_dir)
        return True

    @staticmethod
    def _copy_data_files(source: Path, destination: Path) -> None:
        """Keys generated into the template's data directory, so the clone's sealed and chained rows open."""
        if not source.exists():
            return
        destination.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.is_file() and not (destination / path.name).exists():
                shutil.copy2(path, destination / path.name)

    def drop_all(self) -> None:
        """Drop every template database and remove every template's files."""
        for name in self.pg_databases:
            with contextlib.suppress(Exception):
                pg_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for workdir in self.built.values():
            shutil.rmtree(workdir, ignore_errors=True)


TEMPLATES = Templates()
