"""Commits wake the relay and the dispatchers (PostgreSQL LISTEN/NOTIFY, named pipes beside a SQLite
file), so that an idle `accrual beat` does not have to poll every 50 ms to answer quickly.

Each wait below is given far longer than any wake-up takes, and the assertions are on what woke it
(the channel), never on how fast: a missing wake-up fails by returning no channel at the timeout.
"""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import make_url, select, text

from config import Settings
from models import Event, EventStatus, WebhookDelivery
from services.events.catalogue import TrialStatusChanged
from services.events.outbox import add_event
from services.events.wakeup import OUTBOX, SENDS, Listener, wake
from services.notifications.webhooks import create_subscription
from services.tokens import authenticate
from tests.support.applicants import eligible_applicant
from tests.support.stack import TRIAL, Stack, make_settings
from tests.support.waiting import wait_until
from workers import beat

LONG = 30.0  # seconds: a wait that only a missing wake-up runs out
STATUS_CHANGED = TrialStatusChanged.model_validate(
    {"from": "RECRUITING", "to": "RECRUITING", "reason": "a test"}
)


@pytest.fixture
def listener(stack: Stack) -> Iterator[Listener]:
    listening = Listener(stack.db.engine.url)
    assert listening.wakes
    listening.start()
    yield listening
    listening.close()


def announce(stack: Stack) -> None:
    with stack.db.transaction() as session:
        add_event(session, STATUS_CHANGED, trial_id=TRIAL)


def test_an_event_committed_anywhere_wakes_the_outbox_listener(stack: Stack, listener: Listener) -> None:
    announce(stack)
    assert listener.wait(LONG) == {OUTBOX}
    assert listener.wait(0.2) == set()  # one commit, one wake-up: the pipe or the queue was drained


def test_a_submission_over_the_api_wakes_it_too(stack: Stack, listener: Listener) -> None:
    assert stack.submit(eligible_applicant("WAKE-1")).status_code == 202
    assert OUTBOX in listener.wait(LONG)


def test_a_rolled_back_transaction_wakes_nobody(stack: Stack, listener: Listener) -> None:
    with pytest.raises(RuntimeError), stack.db.transaction() as session:
        add_event(session, STATUS_CHANGED, trial_id=TRIAL)
        raise RuntimeError("the use case failed")
    assert listener.wait(1.0) == set()
    with stack.db.transaction() as session:  # the session's pending wake-up did not leak into the next
        session.execute(select(Event.id).limit(1))
    assert listener.wait(1.0) == set()


def test_each_channel_wakes_its_own_listeners(stack: Stack) -> None:
    sends_only = Listener(stack.db.engine.url, channels=(SENDS,))
    try:
        sends_only.start()
        announce(stack)
        assert sends_only.wait(1.0) == set()
        with stack.db.transaction() as session:
            wake(session, SENDS)
        assert sends_only.wait(LONG) == {SENDS}
    finally:
        sends_only.close()


def test_a_listener_whose_connection_was_cut_listens_again(pg_stack: Stack) -> None:
    listener = Listener(pg_stack.db.engine.url)
    try:
        listener.start()
        with pg_stack.db.engine.begin() as connection:
            cut = connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
                    " AND datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        assert cut == [(True,)] * len(cut) and cut
        assert listener.wait(0.5) == set()  # the cut is noticed, and it polls this once
        # Listening again, it cannot know what committed meanwhile: it answers as if all woke.
        assert listener.wait(LONG) == {OUTBOX, SENDS}
        announce(pg_stack)
        assert listener.wait(LONG) == {OUTBOX}
    finally:
        listener.close()


# --- the loop of `accrual beat` ---------------------------------------------------------------------


@pytest.fixture
def slow_polling(stack: Stack, tmp_path: Any) -> Iterator[tuple[Stack, Settings]]:
    """`accrual beat`'s loop in a thread, polling only once a minute, with an in-memory broker."""
    settings = make_settings(
        tmp_path / "beat",
        stack.settings.database_url,
        broker_url="memory://",
        wakeup_poll_seconds=60,
        webhook_dispatch_interval_seconds=60,
        sweep_interval_seconds=600,  # no periodic job falls due during a test either
        broker_purge_interval_seconds=600,
        recount_interval_seconds=600,
        webhook_allow_private=True,
    )
    app = Celery("wakeup-test", broker="memory://")
    app.conf.accrual_settings = settings
    stop = threading.Event()
    thread = threading.Thread(target=beat.run, args=(settings, stack.db, app, stop), daemon=True)
    thread.start()
    # Once an event committed now is published, the loop has made a pass, and it listens from before
    # its first pass: what the test commits next can only be found early by a wake-up.
    announce(stack)
    wait_until(lambda: not pending_events(stack), timeout=LONG, what="the relay's first pass")
    yield stack, settings
    stop.set()
    thread.join(timeout=LONG + 5)
    assert not thread.is_alive()


def pending_events(stack: Stack) -> list[str]:
    with stack.db.sessions() as session:
        return list(session.scalars(select(Event.id).where(Event.status == EventStatus.PENDING.value)))


def test_the_relay_publishes_a_new_event_without_waiting_for_its_poll(
    slow_polling: tuple[Stack, Settings],
) -> None:
    stack, _ = slow_polling
    assert stack.submit(eligible_applicant("WAKE-BEAT")).status_code == 202
    # Long before the minute's poll: the submission's commit woke the loop.
    wait_until(lambda: not pending_events(stack), timeout=LONG, what="the event published")


def test_a_new_delivery_is_dispatched_without_waiting_for_the_dispatchers_poll(
    slow_polling: tuple[Stack, Settings],
) -> None:
    stack, settings = slow_polling
    with stack.db.transaction() as session:
        admin = authenticate(session, stack.admin)
        assert admin is not None
        create_subscription(session, admin, "http://127.0.0.1:9/hook", ["trial.status_changed"], settings)
    announce(stack)  # relayed once woken; its fan-out's commit wakes the dispatcher, which claims it

    def claimed() -> bool:
        with stack.db.sessions() as session:
            return session.scalar(select(WebhookDelivery.claim).limit(1)) is not None

    wait_until(claimed, timeout=LONG, what="the delivery claimed by the dispatcher")


def test_sqlite_pipes_live_beside_the_database_file_and_are_not_regular_files(tmp_path: Path) -> None:
    database = tmp_path / "accrual.db"
    listener = Listener(make_url(f"sqlite:///{database}"))
    try:
        assert listener.wakes
        for channel in (OUTBOX, SENDS):
            pipe = database.with_name(f"accrual.db.{channel}")
            assert stat.S_ISFIFO(pipe.stat().st_mode)  # not a file a backup or a copy would read
    finally:
        listener.close()
    assert not database.exists()  # listening creates no database


def test_a_file_in_the_place_of_a_pipe_makes_the_listener_poll_instead_of_spinning(tmp_path: Path) -> None:
    database = tmp_path / "accrual.db"
    database.with_name(f"accrual.db.{SENDS}").write_bytes(b"copied")  # a copy of a data directory
    listener = Listener(make_url(f"sqlite:///{database}"))
    try:
        assert not listener.wakes
        assert listener.wait(0.2) == set()  # waited out, not answered at once by a readable file
    finally:
        listener.close()


def test_an_in_memory_database_cannot_be_woken_and_only_waits(tmp_path: Path) -> None:
    listener = Listener(make_url("sqlite://"))
    assert not listener.wakes
    assert listener.wait(0.1) == set()
    listener.close()


def test_without_a_listener_a_commit_still_succeeds(stack: Stack) -> None:
    # Nobody holds the pipe (SQLite) or listens (PostgreSQL): the wake-up is dropped, the work stays.
    announce(stack)
    with stack.db.sessions() as session:
        assert session.scalar(text("SELECT count(*) FROM events WHERE status = 'pending'"))


# --- the embedded broker (a SQLite file) --------------------------------------------------------------


# kombu's own table mapping uses a loader strategy SQLAlchemy 2.1 deprecates; the worker processes that
# use it do not turn warnings into errors, this process does.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_a_message_put_in_the_embedded_broker_wakes_a_waiting_consumer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importing the Celery application patches kombu's SQLAlchemy transport (workers/celery_app.py).
    from kombu import Connection
    from kombu.transport import sqlalchemy as kombu_sqla

    import workers.celery_app

    monkeypatch.setattr(kombu_sqla.Transport, "polling_interval", 600.0)  # only a wake-up is in time
    woken: list[set[str]] = []
    waiting = Listener.wait

    def recorded(listener: Listener, timeout: float) -> set[str]:
        channels = waiting(listener, timeout)
        woken.append(channels)
        return channels

    monkeypatch.setattr(Listener, "wait", recorded)
    url = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    with Connection(url) as consuming, Connection(url) as producing:
        inbox = consuming.SimpleQueue("wake-test")
        with pytest.raises(inbox.Empty):
            inbox.get(timeout=0.1)  # the queue exists and the consumer has polled it once: it waits now
        sender = threading.Timer(0.5, lambda: producing.SimpleQueue("wake-test").put({"n": 1}))
        sender.start()
        try:
            message = inbox.get(timeout=LONG)  # without the wake-up: Empty after LONG
        finally:
            sender.join()
        assert message.payload == {"n": 1}
        assert woken[-1] == {workers.celery_app.BROKER_CHANNEL}  # woken, not the end of a poll
        message.ack()
        inbox.close()
