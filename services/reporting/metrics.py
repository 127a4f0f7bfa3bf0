"""Operational figures for Prometheus, read at scrape time from the database and the broker.

Read at scrape, not counted in process, so any number of API processes give the same answer and a
restart loses nothing; each process keeps what it read for a few seconds (`ScrapeCache`), so a storm
of scrapes costs one set of queries per interval. Aggregates only: no trial, site or application
appears in a label.
"""

from __future__ import annotations

import sqlite3
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import redis
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from config import queues
from models import Application, ApplicationStatus, EmailMessage, Event, EventStatus, WebhookDelivery
from models.base import utcnow

PRIORITY_STEPS = (3, 6, 9)  # kombu's Redis transport's default steps beside the base list
RECENT = timedelta(minutes=15)
BROKER_TIMEOUT_SECONDS = 2


@dataclass
class Figures:
    gauges: dict[str, tuple[str, float]] = field(default_factory=dict)
    labelled: dict[str, tuple[str, str, dict[str, float]]] = field(default_factory=dict)

    def gauge(self, name: str, help_text: str, value: float) -> None:
        self.gauges[name] = (help_text, value)

    def family(self, name: str, help_text: str, label: str, values: dict[str, float]) -> None:
        self.labelled[name] = (help_text, label, values)


class ScrapeCache:
    """The last exposition read, served again until it is `max_age` seconds old (0: never served again).

    One thread reads at a time while the others wait for its answer, so a burst of scrapes is one read.
    """

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._exposition: bytes | None = None
        self._read_at = 0.0

    def get(self, read: Callable[[], bytes]) -> bytes:
        """The cached exposition while fresh, else a new one from `read` (kept only if it succeeds)."""
        with self._lock:
            now = self._clock()
            if self._exposition is None or now - self._read_at >= self.max_age:
                self._exposition = read()
                self._read_at = now
            return self._exposition


def _age(session: Session, column: InstrumentedAttribute[datetime], where: ColumnElement[bool]) -> float:
    oldest = session.scalar(select(func.min(column)).where(where))
    return 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())


def database_figures(session: Session, figures: Figures) -> None:
    pending = Event.status == EventStatus.PENDING
    dead = Event.status == EventStatus.DEAD
    figures.gauge(
        "accrual_outbox_pending_events", "Events not yet published to the broker",
        float(session.scalar(select(func.count()).select_from(Event).where(pending)) or 0),
    )  # fmt: skip
    figures.gauge(
        "accrual_relay_lag_seconds", "Age of the oldest unpublished event (0 when none)",
        _age(session, Event.occurred_at, pending),
    )  # fmt: skip
    figures.gauge(
        "accrual_outbox_dead_events", "Events the relay gave up publishing",
        float(session.scalar(select(func.count()).select_from(Event).where(dead)) or 0),
    )  # fmt: skip
    undecided = Application.decided_at.is_(None) & (Application.status == ApplicationStatus.SUBMITTED)
    figures.gauge(
        "accrual_applications_undecided", "Applications waiting for their decision",
        float(session.scalar(select(func.count()).select_from(Application).where(undecided)) or 0),
    )  # fmt: skip
    figures.gauge(
        "accrual_oldest_undecided_age_seconds", "Age of the oldest application waiting for its decision",
        _age(session, Application.submitted_at, undecided),
    )  # fmt: skip
    redelivered = undecided & (Application.screening_deliveries > 1)
    figures.gauge(
        "accrual_screening_redelivered", "Undecided applications whose screening task came more than once",
        float(session.scalar(select(func.count()).select_from(Application).where(redelivered)) or 0),
    )  # fmt: skip
    dead_lettered = Application.dead_lettered_at.is_not(None) & (
        Application.status == ApplicationStatus.NEEDS_REVIEW
    )
    figures.gauge(
        "accrual_screening_dead_letters", "Applications whose screening was given up, waiting for a retry",
        float(session.scalar(select(func.count()).select_from(Application).where(dead_lettered)) or 0),
    )  # fmt: skip
    _decision_latency(session, figures)
    for model, name, what in (
        (WebhookDelivery, "accrual_webhook_deliveries", "Webhook deliveries by status"),
        (EmailMessage, "accrual_emails", "Coordinator e-mails by status"),
    ):
        rows = session.execute(select(model.status, func.count()).group_by(model.status)).all()
        figures.family(name, what, "status", {status: float(count) for status, count in rows})


def _decision_latency(session: Session, figures: Figures) -> None:
    since = utcnow() - RECENT
    rows = session.execute(
        select(Application.submitted_at, Application.decided_at).where(Application.decided_at >= since)
    ).all()
    latencies = sorted((decided - submitted).total_seconds() for submitted, decided in rows if decided)
    quantiles: dict[str, float] = {}
    if latencies:
        quantiles["0.5"] = statistics.median(latencies)
        quantiles["0.95"] = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    figures.family(
        "accrual_decision_latency_seconds",
        "Submission to decision over the last 15 minutes, by quantile",
        "quantile",
        quantiles,
    )


def broker_figures(broker_url: str, figures: Figures) -> None:
    """Messages waiting in each queue; `accrual_broker_up` is 0 when the broker does not answer."""
    try:
        depths = _embedded_depths(broker_url) if broker_url.startswith("sqla+") else _depths(broker_url)
    except Exception:
        figures.gauge("accrual_broker_up", "1 when the broker answered this scrape", 0.0)
        return
    figures.gauge("accrual_broker_up", "1 when the broker answered this scrape", 1.0)
    figures.family("accrual_queue_depth", "Messages waiting in each broker queue", "queue", depths)


def _depths(broker_url: str) -> dict[str, float]:
    """Redis: kombu keeps each queue as lists, one per priority step (`name`, `name\x06\x16<step>`)."""
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=BROKER_TIMEOUT_SECONDS)
    try:
        keys = {
            queue: [queue, *(f"{queue}\x06\x16{step}" for step in PRIORITY_STEPS)] for queue in queues.ALL
        }
        return {queue: float(sum(client.llen(key) for key in names)) for queue, names in keys.items()}
    finally:
        client.close()


def _embedded_depths(broker_url: str) -> dict[str, float]:
    """kombu's SQLAlchemy transport over SQLite, read with plain SQL (read-only, never creating it)."""
    path = broker_url.split(":///", 1)[1]
    depths = dict.fromkeys(queues.ALL, 0.0)
    if not Path(path).exists():
        return depths  # no worker or relay has used the broker yet: nothing is waiting
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BROKER_TIMEOUT_SECONDS)) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'kombu_message'").fetchone() is None:
            return depths  # no worker or relay has used the broker yet: nothing is waiting
        rows = db.execute(
            "SELECT q.name, count(m.id) FROM kombu_queue q LEFT JOIN kombu_message m"
            " ON m.queue_id = q.id AND m.visible = 1 GROUP BY q.name"
        ).fetchall()
    depths.update({name: float(count) for name, count in rows if name in depths})
    return depths
