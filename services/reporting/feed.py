"""The event feed: every event a caller may see, oldest first, each exactly once, whatever the page size.

A cursor of "seq greater than the last seen" would skip an event whose transaction took its seq early
but committed late. On PostgreSQL every event carries its transaction's id (txid); the feed orders by
(txid, seq) and shows only events of transactions older than the oldest one still running
(pg_snapshot_xmin), so nothing can ever appear behind a cursor. On SQLite writers take the database
lock one at a time (BEGIN IMMEDIATE), so seq order is commit order and txid is 0 throughout.

Published events past the retention period are purged (services.events.retention): a cursor from
before the purge gets 410 `cursor-expired`, never a page that silently skips what was purged.

What an event says depends on who reads it (the feed here, webhooks at each attempt): an admin gets
its data whole; a sponsor, of an event about one applicant, only the fields its type lists in
`sponsor_sees` (services.events.catalogue): never the criteria of one applicant's screening (v1.1).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, literal_column, or_, select, true
from sqlalchemy.orm import Session

from models import Event, Role, Trial
from services.events.catalogue import sponsor_sees
from services.events.retention import purged_through, require_within_reach
from services.pagination import decode_cursor, encode_cursor
from services.tokens import Caller

FEED_SCOPE = "events"  # not bound to a token: a consumer keeps its place across token rotation
START = {"t": -1, "s": 0}


def data_for(event: Event, *, for_admin: bool) -> dict[str, Any]:
    """The event's data as its reader may see it: whole for an admin, no applicant's clinical facts else.

    Sponsors see screen-failure reasons in aggregate, in the recruitment report, never per applicant.
    """
    if for_admin or event.application_id is None:
        return dict(event.data)
    allowed = sponsor_sees(event.type)
    return {key: value for key, value in event.data.items() if key in allowed}


def envelope(event: Event, *, for_admin: bool) -> dict[str, Any]:
    """The contract's envelope: ids, type, time and the event's data as `data_for` lets the reader see it."""
    body: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat().replace("+00:00", "Z"),
        "trial_id": event.trial_id,
    }
    if event.site_id is not None:
        body["site_id"] = event.site_id
    if event.application_id is not None:
        body["application_id"] = event.application_id
    body["data"] = data_for(event, for_admin=for_admin)
    return body


def _finished_before(session: Session) -> ColumnElement[bool]:
    """Only events whose transaction, and every older one, has finished: read once, so that the page
    and where its reader stands (_caught_up) are measured against the same horizon."""
    if session.get_bind().dialect.name != "postgresql":
        return true()
    horizon: int = session.execute(
        select(literal_column("(pg_snapshot_xmin(pg_current_snapshot())::text)::bigint"))
    ).scalar_one()
    return Event.txid < horizon


def _visible_to(session: Session, caller: Caller) -> ColumnElement[bool]:
    if caller.role is Role.ADMIN:
        return true()
    trials = session.execute(select(Trial.trial_id, Trial.sponsor)).all()
    return Event.trial_id.in_([trial_id for trial_id, sponsor in trials if caller.speaks_for(sponsor)])


def _newest_finished(
    session: Session, position: tuple[int, int], finished: ColumnElement[bool]
) -> tuple[int, int]:
    """The feed position of the newest finished event after `position`, whoever may see it (or
    `position`). Read before the page: an event that finishes meanwhile comes after it (SQLite's
    writers take turns; PostgreSQL's horizon is fixed), so a cursor moved up to it skips nothing."""
    newest = session.execute(
        select(Event.txid, Event.seq)
        .where(
            or_(Event.txid > position[0], and_(Event.txid == position[0], Event.seq > position[1])),
            finished,
        )
        .order_by(Event.txid.desc(), Event.seq.desc())
        .limit(1)
    ).first()
    return (int(newest.txid), int(newest.seq)) if newest is not None else position


def read_feed(
    session: Session, caller: Caller, cursor: str | None, limit: int, key: bytes
) -> tuple[list[dict[str, Any]], str]:
    """Up to `limit` events after `cursor`, and the cursor to continue from (the same one if none).

    CursorExpired when events after `cursor` were purged. Checked after the page is read: a purge that
    committed before the read is seen by the check, one that committed after took nothing from the page.
    """
    position = decode_cursor(cursor, FEED_SCOPE, key) if cursor else START
    txid, seq = int(position["t"]), int(position["s"])
    finished = _finished_before(session)
    # Where a reader who sees every event visible to it up to the horizon stands: past the newest
    # finished event, whoever may see it, and never before the purge. A quiet sponsor's cursor thus moves
    # with the whole log, and a purge of other trials' events never strands it behind a 410 (it would
    # have missed nothing); only a reader away longer than the retention period finds it expired.
    caught_up = _newest_finished(session, (txid, seq), finished)
    events = list(
        session.scalars(
            select(Event)
            .where(
                or_(Event.txid > txid, and_(Event.txid == txid, Event.seq > seq)),
                finished,
                _visible_to(session, caller),
            )
            .order_by(Event.txid, Event.seq)
            .limit(limit)
        )
    )
    if cursor:
        require_within_reach(session, (txid, seq))
    if events:
        position = {"t": events[-1].txid, "s": events[-1].seq}
    if len(events) < limit:
        furthest = max((int(position["t"]), int(position["s"])), caught_up, purged_through(session))
        position = {"t": furthest[0], "s": furthest[1]}
    for_admin = caller.role is Role.ADMIN
    return [envelope(e, for_admin=for_admin) for e in events], encode_cursor(position, FEED_SCOPE, key)
