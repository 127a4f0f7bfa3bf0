"""mail.compose and mail.send: coordinators' e-mail, written once per event and sent from its row."""

from __future__ import annotations

from celery import Task, shared_task

from services.notifications.mail import queue_emails, send_email
from workers.resources import database_for
from workers.tasks import RETRY_TRANSIENT


@shared_task(name="mail.compose", bind=True, **RETRY_TRANSIENT)
def compose(self: Task, event_id: str) -> None:
    """Write the messages an event calls for; a repeated delivery of the event writes nothing more."""
    settings = self.app.conf.accrual_settings
    queue_emails(database_for(settings), event_id, settings)


@shared_task(name="mail.send", bind=True, **RETRY_TRANSIENT)
def send(self: Task, message_id: str, claim: str) -> None:
    """One attempt under the dispatcher's claim; the next attempt's time lives in the message's row."""
    settings = self.app.conf.accrual_settings
    send_email(database_for(settings), message_id, claim, settings)
