"""Versions of what changes rarely, so that each process may keep copies of it and know when they go stale."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class CatalogKind(StrEnum):
    """A kind of rarely changing record that processes keep copies of, and the tables it is read from."""

    TRIALS = "trials"
    TOKENS = "tokens"
    WEBHOOKS = "webhooks"


class CatalogVersion(Base):
    """How many committed transactions have changed one kind of record.

    Every write to one of a kind's tables (trials: trials, sites, criteria_versions; tokens: api_tokens;
    webhooks: webhook_subscriptions) moves its version on in the writing transaction, by a trigger
    (migration 0017): a change made by any path, the API, the command line or SQL by hand, makes every
    process's copies stale at its commit."""

    __tablename__ = "catalog_versions"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
