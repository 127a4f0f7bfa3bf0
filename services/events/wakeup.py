"""Waking the relay and the dispatchers when there is work for them, instead of having them poll for it.

A transaction that writes to the outbox, or schedules a webhook delivery or an e-mail, says so
(`wake(session, channel)`); once it commits, a `Listener` waiting on the channel wakes:

- on PostgreSQL by NOTIFY, sent after the commit by a thread of the process from a connection of its
  own (`Notifier`), never inside the transaction: PostgreSQL takes one lock for the whole database
  while it commits a transaction that notifies, so notifying writers would commit one at a time, each
  waiting for the others' WAL flush. The thread coalesces: the commits made while it sends are
  announced by its next NOTIFY;
- on SQLite by a byte written, after the commit, to a named pipe beside the database file: the
  processes of one SQLite database share a machine, and `accrual serve` runs the API, the worker and
  the relay as separate processes. Without a listener the write is skipped (nobody holds the pipe).

A wake-up is a hint, never the only way work is found: a listener still polls, slowly, so a
notification lost with a dropped connection, a byte dropped from a full pipe or a retry whose time
has come are picked up at the next poll.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import select
import stat
import threading
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

OUTBOX = "accrual_outbox"  # an event was written (or put back) in the outbox: the relay has work
SENDS = "accrual_sends"  # a webhook delivery or an e-mail is due: the dispatchers have work
CHANNELS = (OUTBOX, SENDS)
_PENDING = "accrual.wakeup.pending"


def wake(session: Session, channel: str) -> None:
    """Wake the listeners of `channel` once this session's transaction commits."""
    session.info.setdefault(_PENDING, set()).add(channel)


@event.listens_for(Session, "after_commit")
def _signal_after_commit(session: Session) -> None:
    for channel in session.info.pop(_PENDING, None) or ():
        signal(session.get_bind().engine.url, channel)


def signal(url: URL, channel: str) -> None:
    """Wake the listeners of `channel` of the database at `url` now: on PostgreSQL by this process's
    notifier, on a SQLite file through its named pipe (also for writes outside a Session: the embedded
    broker's); nothing for any other database."""
    if url.get_backend_name() == "postgresql":
        notifier_for(url).notify(channel)
        return
    database = _sqlite_file(url)
    if database is not None:
        _write_byte(pipe_path(database, channel))


class Notifier:
    """Sends NOTIFY for the channels it is asked to, from a thread and a connection of its own.

    Asked while it sends, it sends once more when done, for every channel asked meanwhile: a burst of
    commits costs a NOTIFY per round trip, not one each. A send that fails on a connection the server
    dropped is tried once more on a new one; one that fails again is dropped (the listeners' slow poll
    finds the work). A process that exits waits a moment for what it was asked to send (`flush`)."""

    def __init__(self, url: URL) -> None:
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._asked: set[str] = set()
        self._sending = False
        self._lock = threading.Condition()
        self._connection: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name="accrual-notifier", daemon=True)
        self._thread.start()

    def notify(self, channel: str) -> None:
        with self._lock:
            self._asked.add(channel)
            self._lock.notify_all()

    def flush(self, timeout: float) -> None:
        """Wait until everything asked so far is sent (or `timeout` seconds)."""
        with self._lock:
            self._lock.wait_for(lambda: not self._asked and not self._sending, timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: bool(self._asked))
                channels, self._asked, self._sending = sorted(self._asked), set(), True
            try:
                self._send(channels)
            except Exception as exc:  # never let the thread die: later commits still need waking
                log.error("wake-up not sent: %s", type(exc).__name__, exc_info=exc)
            finally:
                with self._lock:
                    self._sending = False
                    self._lock.notify_all()

    def _send(self, channels: list[str]) -> None:
        statement = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(sql.SQL("pg_notify({}, '')").format(sql.Literal(c)) for c in channels)
        )
        for attempt in (1, 2):
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
                self._connection.execute(statement)
                return
            except psycopg.Error as exc:
                with contextlib.suppress(psycopg.Error):
                    if self._connection is not None:
                        self._connection.close()
                self._connection = None
                if attempt == 2:
                    log.warning(
                        "wake-up not sent (%s); the listeners' poll will find the work", type(exc).__name__
                    )


_notifiers: dict[tuple[int, str], Notifier] = {}
_notifiers_lock = threading.Lock()


@atexit.register
def _flush_notifiers() -> None:
    # A command that commits and exits (`accrual screening retry`) would otherwise take its wake-up along.
    for notifier in list(_notifiers.values()):
        notifier.flush(timeout=2.0)


def notifier_for(url: URL) -> Notifier:
    """This process's notifier for the database at `url` (one per process: a fork gets its own)."""
    key = (os.getpid(), url.render_as_string(hide_password=False))
    with _notifiers_lock:
        if key not in _notifiers:
            _notifiers[key] = Notifier(url)
        return _notifiers[key]


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING, None)


def _sqlite_file(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def can_wake(url: URL) -> bool:
    """Whether commits to the database at `url` can wake its listeners (else they only poll)."""
    return url.get_backend_name() == "postgresql" or (_sqlite_file(url) is not None and hasattr(os, "mkfifo"))


def pipe_path(database: Path, channel: str) -> Path:
    """The named pipe of `channel` for the SQLite database file `database`."""
    return database.with_name(f"{database.name}.{channel}")


def _write_byte(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no pipe, or nobody reading it: nobody to wake
        return
    try:
        os.write(descriptor, b"\0")
    except OSError as exc:  # a full pipe already holds a wake-up
        if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
            log.debug("wake-up on %s not written: %s", path.name, type(exc).__name__)
    finally:
        os.close(descriptor)


class Listener:
    """Waits until one of `channels` is woken or a timeout passes.

    On PostgreSQL it holds a connection of its own that LISTENs (opened on first wait, opened again
    after a failure); on a SQLite file it reads the channels' named pipes. Anything else (an in-memory
    database, a system without named pipes) only waits out the timeout.
    """

    def __init__(self, url: URL, channels: tuple[str, ...] = CHANNELS) -> None:
        self.url = url
        self.channels = channels
        self._connection: psycopg.Connection[Any] | None = None
        self._pipes: dict[int, str] = {}  # read descriptor -> channel
        self._keep_open: list[int] = []  # our own write ends: without a writer, a pipe reads as closed
        database = _sqlite_file(url)
        self.wakes = can_wake(url)
        if database is not None:
            for channel in channels:
                if self.wakes:  # a name that is not a pipe turns it off (see _open_pipe)
                    self._open_pipe(pipe_path(database, channel), channel)

    def _open_pipe(self, path: Path, channel: str) -> None:
        with contextlib.suppress(FileExistsError):
            os.mkfifo(path, 0o600)
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            # Something else took the name (a copy of the data directory made the pipe a file): a file
            # always reads as ready, so listening on it would spin. Poll instead, and say why.
            log.warning("%s is not a named pipe; polling instead of waiting for wake-ups", path.name)
            self.close()
            self.wakes = False
            return
        reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._keep_open.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        self._pipes[reader] = channel

    def start(self) -> None:
        """Listen from now on: whatever commits after this wakes a later `wait`. (On PostgreSQL a
        notification sent before LISTEN is lost; the first `wait` would listen too late for it.)"""
        if not self._pipes and self.url.get_backend_name() == "postgresql":
            with contextlib.suppress(psycopg.Error):  # the first wait connects again, and says so
                self._listening()

    def wait(self, timeout: float) -> set[str]:
        """The channels woken, as soon as one is, or an empty set after `timeout` seconds."""
        if self._pipes:
            return self._wait_on_pipes(timeout)
        if self.url.get_backend_name() == "postgresql":
            return self._wait_on_postgresql(timeout)
        select.select([], [], [], timeout)
        return set()

    def _wait_on_pipes(self, timeout: float) -> set[str]:
        ready, _, _ = select.select(list(self._pipes), [], [], timeout)
        for descriptor in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(descriptor, 4096):  # drain: one wake-up stands for all that came
                    pass
        return {self._pipes[descriptor] for descriptor in ready}

    def _wait_on_postgresql(self, timeout: float) -> set[str]:
        try:
            if self._connection is None:
                # Not listening until now (first use, or the connection dropped): anything may have
                # committed meanwhile unheard, so answer as if every channel woke.
                self._listening()
                return set(self.channels)
            connection = self._listening()
            heard = {n.channel for n in connection.notifies(timeout=timeout, stop_after=1)}
            if heard:  # and whatever else is already waiting, without blocking
                heard |= {n.channel for n in connection.notifies(timeout=0)}
            return heard
        except psycopg.Error as exc:
            # The server restarted or the connection dropped: poll this time, listen again next time.
            log.warning("listening for wake-ups failed (%s); polling meanwhile", type(exc).__name__)
            self._close_connection()
            select.select([], [], [], timeout)
            return set()

    def _listening(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
            connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
            for channel in self.channels:
                connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._connection = connection
        return self._connection

    def _close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def close(self) -> None:
        self._close_connection()
        for descriptor in [*self._pipes, *self._keep_open]:
            with contextlib.suppress(OSError):
                os.close(descriptor)
        self._pipes.clear()
        self._keep_open.clear()
