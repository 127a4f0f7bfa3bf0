"""A real SMTP server's side of the tests (an aiosmtpd handler that keeps what it is sent), and the
e-mail pipeline driven in the test's own process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from models import EmailMessage, Event
from services.notifications.mail import mail_lease, queue_emails, send_email
from services.notifications.scheduled_sends import claim_due


class Inbox:
    """An aiosmtpd handler keeping every message; `refuse` answers RCPT with a permanent 550."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse = False

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@contextmanager
def smtp_server(port: int) -> Iterator[Inbox]:
    """A real SMTP server on loopback `port` for the duration; what it is sent."""
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


def compose_all(stack: Any) -> int:
    """What the mail.compose consumer does for every event the relay hands it."""
    with stack.db.sessions() as session:
        ids = list(session.scalars(select(Event.id).order_by(Event.seq)))
    return sum(queue_emails(stack.db, event_id, stack.settings) for event_id in ids)


def mail_pending(stack: Any) -> int:
    with stack.db.sessions() as session:
        query = select(func.count()).select_from(EmailMessage).where(EmailMessage.status == "pending")
        return int(session.scalar(query) or 0)


def pump_mail(stack: Any, timeout: float = 15) -> None:
    """Claim and send due messages in this process, as `accrual beat` and the workers would, until none
    is pending."""
    deadline = time.monotonic() + timeout
    while mail_pending(stack) and time.monotonic() < deadline:
        with stack.db.transaction() as session:
            due = claim_due(session, EmailMessage, mail_lease(stack.settings), 100)
        for message_id, claim in due:
            send_email(stack.db, message_id, claim, stack.settings)
        if not due:
            time.sleep(0.02)
    assert mail_pending(stack) == 0
