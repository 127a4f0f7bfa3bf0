"""Per-process copies of what changes rarely: tokens, trials with their sites, webhook subscriptions.

Each copy is valid for one version of its kind (`catalog_versions`, moved on by a trigger in every
transaction that writes one of the kind's tables). A request reads the versions once, in one statement,
and uses a copy only if it was read at the same version: a revoked token, a closed site or a deleted
subscription takes effect at the next request after its commit, in every process, without each request
reading the rows again. The versions are read before the rows they validate, so a copy can only be
newer than its version says, never older.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import and_, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from models import CatalogKind, CatalogVersion, Site, Trial, WebhookSubscription
from models.base import utcnow
from services.tokens import Caller, token_hash, token_row

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
TOKENS_KEPT, PLACES_KEPT = 10_000, 4_096


class Kept(Generic[K, V]):
    """Copies of one kind of record, all read at one version of it; a newer version starts afresh.

    Thread-safe: a copy is loaded outside the lock (two threads may both load it; either copy is right)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._version = -1
        self._copies: dict[K, V] = {}

    def get(self, version: int, key: K, load: Callable[[], V | None]) -> V | None:
        """The copy of `key` read at `version`, loading it if there is none; None (never kept) if
        `load` finds nothing."""
        with self._lock:
            if self._version == version and key in self._copies:
                return self._copies[key]
        value = load()
        if value is not None:
            self._keep(version, key, value)
        return value

    def _keep(self, version: int, key: K, value: V) -> None:
        with self._lock:
            if version > self._version:
                self._version, self._copies = version, {}
            if version != self._version:
                return  # read at a version already superseded here: used once, not kept
            if len(self._copies) >= self._limit:
                self._copies.clear()
            self._copies[key] = value


@dataclass(frozen=True)
class KeptToken:
    caller: Caller
    expires_at: datetime | None


@dataclass(frozen=True)
class TrialFacts:
    """What intake needs of a trial."""

    trial_id: str
    overall_status: str
    current_criteria_version: int | None


@dataclass(frozen=True)
class SiteFacts:
    site_id: str
    status: str


@dataclass(frozen=True)
class Place:
    """A trial, and the site asked for in it (None if the trial has no such site)."""

    trial: TrialFacts
    site: SiteFacts | None


@dataclass(frozen=True)
class Subscriber:
    """What the fan-out needs of a live webhook subscription."""

    id: str
    sponsor: str | None
    event_types: frozenset[str]
    created_at: datetime


NO_TRIAL = "no trial"  # kept for an unknown trial id, so that a client repeating one costs no query


class Catalog:
    """One database's copies in this process."""

    def __init__(self) -> None:
        self.tokens: Kept[str, KeptToken] = Kept(TOKENS_KEPT)
        self.places: Kept[tuple[str, str], Place | str] = Kept(PLACES_KEPT)
        self.subscribers: Kept[str, tuple[Subscriber, ...]] = Kept(1)


_CATALOGS: weakref.WeakKeyDictionary[Pool, Catalog] = weakref.WeakKeyDictionary()
_CATALOGS_LOCK = threading.Lock()


def _catalog_of(session: Session) -> Catalog:
    # By connection pool: every engine of one database in this process shares it (the read-only one
    # too), and a disposed engine's copies go with its old pool.
    pool = session.get_bind().engine.pool
    with _CATALOGS_LOCK:
        catalog = _CATALOGS.get(pool)
        if catalog is None:
            catalog = _CATALOGS[pool] = Catalog()
        return catalog


@dataclass(frozen=True)
class CatalogAt:
    """The catalog as of the versions one request read."""

    catalog: Catalog
    versions: dict[str, int]

    def caller(self, session: Session, token: str) -> Caller | None:
        """The caller a presented token stands for, or None if it is unknown, expired or revoked."""

        hashed = token_hash(token)  # kept by hash: the process holds no token it was shown
        if hashed is None:
            return None

        def load() -> KeptToken | None:
            row = token_row(session, hashed)
            if row is None or row.revoked_at is not None:
                return None
            return KeptToken(Caller.of(row), row.expires_at)

        kept = self.catalog.tokens.get(self.versions[CatalogKind.TOKENS], hashed, load)
        if kept is None or (kept.expires_at is not None and kept.expires_at <= utcnow()):
            return None
        return kept.caller

    def place(self, session: Session, trial_id: str, site_id: str) -> Place | None:
        """The trial of registry id `trial_id` (as stored) and its site `site_id`; None without the trial."""
        place = self.catalog.places.get(
            self.versions[CatalogKind.TRIALS],
            (trial_id, site_id),
            lambda: _load_place(session, trial_id, site_id),
        )
        return place if isinstance(place, Place) else None

    def subscribers(self, session: Session) -> tuple[Subscriber, ...]:
        """Every live (neither deleted nor disabled) webhook subscription."""
        kept = self.catalog.subscribers.get(
            self.versions[CatalogKind.WEBHOOKS], "live", lambda: _load_subscribers(session)
        )
        return kept or ()


def catalog_at(session: Session) -> CatalogAt:
    """The catalog as of now: one statement reads every kind's version."""
    # On the connection, not through the ORM's execution path: on every request, and only columns.
    rows = session.connection().execute(select(CatalogVersion.kind, CatalogVersion.version))
    return CatalogAt(_catalog_of(session), {kind: version for kind, version in rows})


def _load_place(session: Session, trial_id: str, site_id: str) -> Place | str:
    row = session.execute(
        select(
            Trial.trial_id, Trial.overall_status, Trial.current_criteria_version, Site.site_id, Site.status
        )
        .outerjoin(Site, and_(Site.trial_id == Trial.trial_id, Site.site_id == site_id))
        .where(Trial.trial_id == trial_id)
    ).first()
    if row is None:
        return NO_TRIAL
    trial = TrialFacts(row[0], row[1], row[2])
    return Place(trial, SiteFacts(row[3], row[4]) if row[3] is not None else None)


def _load_subscribers(session: Session) -> tuple[Subscriber, ...]:
    rows = session.execute(
        select(
            WebhookSubscription.id,
            WebhookSubscription.sponsor,
            WebhookSubscription.event_types,
            WebhookSubscription.created_at,
        )
        .where(WebhookSubscription.deleted_at.is_(None), WebhookSubscription.disabled_at.is_(None))
        .order_by(WebhookSubscription.created_at, WebhookSubscription.id)
    )
    return tuple(Subscriber(id_, sponsor, frozenset(types), created) for id_, sponsor, types, created in rows)
