"""Database leases, so a periodic job runs once per interval however many schedulers are running."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import SchedulerLease
from models.base import utcnow

# A periodic job's lease lasts this share of its interval: it lapses just before the job is due again.
LEASE_SHARE = 0.9


def lease_for(interval: float) -> timedelta:
    """How long the lease of a job run every `interval` seconds lasts."""
    return timedelta(seconds=interval * LEASE_SHARE)


def acquire(session: Session, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease `name` for `ttl`; False while another holder's lease runs."""
    now = utcnow()
    result = session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == name,
            or_(SchedulerLease.lease_until < now, SchedulerLease.holder == holder),
        )
        .values(holder=holder, lease_until=now + ttl)
    )
    if getattr(result, "rowcount", 0):
        return True
    if session.get(SchedulerLease, name) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(SchedulerLease(name=name, holder=holder, lease_until=now + ttl))
    except IntegrityError:
        return False
    return True
