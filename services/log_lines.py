"""One log record, one line: text from outside never breaks a record into lines of its own.

A request's path (URL-decoded, so `%0A` is a newline), a header or a receiver's answer reaches log
records as arguments: gunicorn's access line, the error handlers' lines. Written as they are, a newline
in one starts a line that reads like a record of its own (`2026-12-07 ... ERROR ...`): a forged entry
in the log an operator trusts. The record factory installed here escapes every line break in a
record's string arguments (`\\n` for a newline) when the record is made, for every logger of the
process (the service's, gunicorn's, Celery's), before any handler formats it. The format strings are
the code's own; a traceback (exc_info) stays multi-line, each of its lines indented by its formatter.

The same factory gives every record the process's service identity and the correlation id of the
request it serves or follows (services.provenance), so any handler's format may name them (LOG_FORMAT
does), whoever configured it. It is installed when this module is first imported: the API, every
`accrual` command and the Celery app import it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from services.provenance import request_id, service_identity

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(service)s %(request_id)s]: %(message)s"

# Every character str.splitlines() breaks a line at: what a log reader might take as a new line.
_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
ESCAPES = str.maketrans({c: repr(c)[1:-1] for c in _BREAKS})

_installed = False


def one_line(value: Any) -> Any:
    """A string with its line breaks escaped; anything else as it is (numbers keep `%d`)."""
    return value.translate(ESCAPES) if isinstance(value, str) else value


def _escaped(args: Any) -> Any:
    if isinstance(args, Mapping):
        return {key: one_line(value) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(one_line(value) for value in args)
    return args


def install_one_line_records() -> None:
    """Escape the line breaks of every record's string arguments, and give each record its service and
    request, from now on, once per process."""
    global _installed
    if _installed:
        return
    base = logging.getLogRecordFactory()

    def one_line_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        record.service = service_identity()
        record.request_id = request_id() or "-"
        if record.args:
            record.args = _escaped(record.args)
        elif not isinstance(record.msg, str):  # an object logged as the message: its text, escaped
            record.msg = one_line(str(record.msg))
        return record

    logging.setLogRecordFactory(one_line_record)
    _installed = True


install_one_line_records()
