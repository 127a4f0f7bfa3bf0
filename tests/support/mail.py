"""A real SMTP server's side of the tests: an aiosmtpd handler that keeps what it is sent."""

from __future__ import annotations

from email import message_from_bytes, policy
from typing import Any


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
