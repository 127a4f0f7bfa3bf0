"""Alembic migrations build exactly the schema the models declare, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from models import Base
from models.db import Database
from models.migrate import alembic_config, is_current, upgrade


def schema_differences(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def check_round_trip(db: Database) -> None:
    assert not is_current(db)
    upgrade(db)
    assert is_current(db)
    assert schema_differences(db) == []
    upgrade(db)  # a second upgrade is a no-op
    cfg = alembic_config(db)
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}


def test_migrations_match_the_models_on_sqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        check_round_trip(db)
    finally:
        db.dispose()


def test_migrations_match_the_models_on_postgresql(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        check_round_trip(db)
    finally:
        db.dispose()
