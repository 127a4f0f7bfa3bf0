"""Catalog versions: each process keeps copies of trials, sites, tokens and webhook subscriptions, valid
while their kind's version is the one they were read at.

A trigger on every table of a kind moves its version on. On PostgreSQL it is a deferred constraint
trigger, so the version's row is locked only at commit, after every other lock of the transaction:
writers of different trials never wait for each other on it before they commit, and no lock order
through it can deadlock. TRUNCATE, which constraint triggers cannot see, has a trigger of its own.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelt out rather than imported from models.catalog: a migration keeps describing its own revision.
TABLES = {
    "trials": ("trials", "sites", "criteria_versions"),
    "tokens": ("api_tokens",),
    "webhooks": ("webhook_subscriptions",),
}
POSTGRES_FUNCTION = """CREATE FUNCTION catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_versions SET version = version + 1 WHERE kind = TG_ARGV[0];
    RETURN NULL;
END;
$$"""


def _postgres_triggers(kind: str, table: str) -> list[str]:
    return [
        f"CREATE CONSTRAINT TRIGGER {table}_catalog_changed AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION catalog_changed('{kind}')",
        f"CREATE TRIGGER {table}_catalog_truncated AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION catalog_changed('{kind}')",
    ]


def _sqlite_triggers(kind: str, table: str) -> list[str]:
    bump = f"UPDATE catalog_versions SET version = version + 1 WHERE kind = '{kind}'"  # noqa: S608 - our names
    return [
        f"CREATE TRIGGER {table}_catalog_{verb.lower()} AFTER {verb} ON {table} BEGIN {bump}; END"
        for verb in ("INSERT", "UPDATE", "DELETE")
    ]


def upgrade() -> None:
    versions = op.create_table(
        "catalog_versions",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("pk_catalog_versions")),
    )
    op.bulk_insert(versions, [{"kind": kind, "version": 0} for kind in TABLES])
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(POSTGRES_FUNCTION)
    for kind, tables in TABLES.items():
        for table in tables:
            for statement in _postgres_triggers(kind, table) if postgres else _sqlite_triggers(kind, table):
                op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for tables in TABLES.values():
        for table in tables:
            if postgres:
                op.execute(f"DROP TRIGGER {table}_catalog_changed ON {table}")
                op.execute(f"DROP TRIGGER {table}_catalog_truncated ON {table}")
            else:
                for verb in ("insert", "update", "delete"):
                    op.execute(f"DROP TRIGGER {table}_catalog_{verb}")
    if postgres:
        op.execute("DROP FUNCTION catalog_changed()")
    op.drop_table("catalog_versions")
