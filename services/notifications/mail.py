"""E-mail to site coordinators, when their applications are decided and when recruitment stops, and to
a webhook's owner when one of its deliveries fails for good.

A `mail.compose` task consumes the events and writes one message row per (event, recipient), at most
once; the rows are then sent like webhook deliveries: claimed on a schedule kept in the row, retried,
and `failed` (the dead letters) once the schedule is spent or the server refuses for good. Messages
say what happened and link to the application by id: no observation, no screening id, no criterion.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import make_msgid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Settings
from models import (
    ApiToken,
    Decision,
    EmailMessage,
    Event,
    Role,
    Site,
    Trial,
    TrialStatus,
    WebhookSubscription,
)
from models.base import utcnow
from models.db import Database
from services.events.catalogue import WebhookDeliveryFailed
from services.events.wakeup import SENDS, wake
from services.ids import new_id
from services.notifications import scheduled_sends
from services.notifications.retry import next_delay

log = logging.getLogger(__name__)

DECISION_WORDS: dict[str, str] = {decision: decision.replace("_", " ") for decision in Decision}
STILL_RECRUITING: frozenset[str] = frozenset(status for status in TrialStatus if status.accepts_applications)
FOOTER = (
    "\n\nThis message carries no clinical data. Sign in to Accrual to see the details.\n"
    "You receive it as a coordinator of the site; an administrator can change where it goes.\n"
)


@dataclass(frozen=True)
class Draft:
    to: str
    subject: str
    body: str


def coordinators_of(session: Session, site_ids: set[str]) -> list[str]:
    """The e-mail addresses of live coordinator tokens bound to any of `site_ids`."""
    tokens = session.scalars(
        select(ApiToken).where(
            ApiToken.role == Role.COORDINATOR,
            ApiToken.revoked_at.is_(None),
            ApiToken.email.is_not(None),
        )
    )
    return sorted({t.email for t in tokens if t.email and site_ids & set(t.site_ids)})


def _stopped(event: Event) -> bool:
    return event.data.get("from") in STILL_RECRUITING and event.data.get("to") not in STILL_RECRUITING


def _site_names(session: Session, trial_id: str) -> dict[str, str]:
    rows = session.execute(select(Site.site_id, Site.name).where(Site.trial_id == trial_id))
    return {site_id: name for site_id, name in rows}


OWNER_FOOTER = (
    "\n\nThis message carries no clinical data. You receive it as the owner of the webhook (the address "
    "of the token that created it).\n"
)


def _owner_address(session: Session, subscription_id: str) -> str | None:
    """The e-mail address of the live token that created the subscription, if it has one."""
    subscription = session.get(WebhookSubscription, subscription_id)
    owner = session.get(ApiToken, subscription.owner_token_id) if subscription is not None else None
    if owner is None or owner.revoked_at is not None:
        return None
    return owner.email


def _delivery_failed(session: Session, event: Event, settings: Settings) -> list[Draft]:
    """Tell a webhook's owner that a delivery is a dead letter, and how to send it again."""
    data = event.data
    address = _owner_address(session, str(data["webhook_id"]))
    if address is None:
        return []
    deliveries = f"{settings.public_url.rstrip('/')}/api/v1/webhooks/{data['webhook_id']}/deliveries"
    answer = data.get("last_status_code")
    subject = f"Accrual: webhook {data['webhook_id']} failed to deliver event {data['event_id']}"
    body = (
        f"Delivery {data['delivery_id']} of event {data['event_id']} to webhook {data['webhook_id']} "
        f"failed after {data['attempts']} attempts (last answer: {answer or 'none'}); no more attempts "
        f"will be made.\n\nList the failed deliveries: {deliveries}?status=failed\n"
        f"Send it again: POST {deliveries}/{data['delivery_id']}/redeliver"
    )
    return [Draft(address, subject, body + OWNER_FOOTER)]


def drafts_for(session: Session, event: Event, settings: Settings) -> list[Draft]:
    """The messages an event calls for; none for events nobody needs to be told of by e-mail."""
    if event.type == WebhookDeliveryFailed.event_type:
        return _delivery_failed(session, event, settings)
    if event.trial_id is None:
        return []
    names = _site_names(session, event.trial_id)
    if event.type == "application.screened" and event.site_id and event.application_id:
        decision = DECISION_WORDS.get(str(event.data.get("decision")))
        if decision is None:
            return []
        link = f"{settings.public_url.rstrip('/')}/api/v1/applications/{event.application_id}"
        subject = f"Accrual: application {event.application_id} is {decision}"
        body = (
            f"Application {event.application_id} to trial {event.trial_id} at "
            f"{names.get(event.site_id, event.site_id)} was screened: {decision}.\n\nOpen it: {link}"
        )
        return [Draft(to, subject, body + FOOTER) for to in coordinators_of(session, {event.site_id})]
    if event.type == "trial.status_changed" and _stopped(event):
        trial = session.get(Trial, event.trial_id)
        title = f" ({trial.title})" if trial is not None else ""
        subject = f"Accrual: trial {event.trial_id} stopped recruiting"
        body = (
            f"Trial {event.trial_id}{title} is now {event.data['to']} "
            f"({str(event.data.get('reason', '')).replace('_', ' ')}); it accepts no new applications."
        )
        return [Draft(to, subject, body + FOOTER) for to in coordinators_of(session, set(names))]
    # A site closed because its trial closed is told of by the trial's message.
    if event.type == "site.status_changed" and event.site_id and _stopped(event):
        if str(event.data.get("reason", "")).startswith("trial_"):
            return []
        site = names.get(event.site_id, event.site_id)
        subject = f"Accrual: {site} stopped recruiting for trial {event.trial_id}"
        body = (
            f"{site} is now {event.data['to']} for trial {event.trial_id} "
            f"({str(event.data.get('reason', '')).replace('_', ' ')}); it accepts no new applications there."
        )
        return [Draft(to, subject, body + FOOTER) for to in coordinators_of(session, {event.site_id})]
    return []


def queue_emails(db: Database, event_id: str, settings: Settings) -> int:
    """Write the event's messages, once however often the event is delivered; how many were new.

    Owns its transaction: a concurrent delivery of the same event that wrote them first ends it."""
    if not settings.mail_enabled:
        return 0
    try:
        with db.transaction() as session:
            event = session.scalars(select(Event).where(Event.id == event_id)).one_or_none()
            if event is None:
                return 0
            already = set(
                session.scalars(select(EmailMessage.to_address).where(EmailMessage.event_id == event_id))
            )
            drafts = [d for d in drafts_for(session, event, settings) if d.to not in already]
            for draft in drafts:
                session.add(
                    EmailMessage(
                        id=new_id("eml"), event_id=event_id, to_address=draft.to, subject=draft.subject,
                        body=draft.body, status="pending", next_attempt_at=utcnow(),
                    )
                )  # fmt: skip
            if drafts:
                wake(session, SENDS)
        return len(drafts)
    except IntegrityError:
        return 0  # a duplicate delivery of the event wrote them at the same moment


def mail_lease(settings: Settings) -> timedelta:
    return timedelta(seconds=3 * settings.smtp_timeout_seconds)


def _mime(message: EmailMessage, settings: Settings) -> MimeMessage:
    mime = MimeMessage()
    mime["From"] = settings.smtp_from
    mime["To"] = message.to_address
    mime["Subject"] = message.subject
    # The same Message-ID on every attempt lets a mail system drop a duplicate.
    mime["Message-ID"] = make_msgid(idstring=message.id, domain=settings.smtp_from.rpartition("@")[2] or None)
    mime.set_content(message.body)
    return mime


def _connect(settings: Settings, context: ssl.SSLContext) -> smtplib.SMTP:
    timeout = settings.smtp_timeout_seconds
    if settings.smtp_security == "ssl":
        return smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout, context=context)
    return smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)


def transmit(mime: MimeMessage, settings: Settings) -> None:
    """Hand the message to the SMTP server; raises smtplib/OS errors as they come."""
    context = ssl.create_default_context()
    with _connect(settings, context) as smtp:
        if settings.smtp_security == "starttls":
            smtp.starttls(context=context)
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(mime)


def _permanent(error: Exception) -> bool:
    """A 5xx answer (refused recipient, rejected message) will not change on a retry."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


def send_email(db: Database, message_id: str, claim: str, settings: Settings) -> str | None:
    """One attempt at a claimed message; the status it ends in, or None if the claim is stale."""
    with db.transaction() as session:
        message = session.get(EmailMessage, message_id, with_for_update=True)
        if message is None or message.status != "pending" or message.claim != claim:
            return None
        scheduled_sends.begin_attempt(message, mail_lease(settings))
        mime = _mime(message, settings)
    error: Exception | None = None
    try:
        transmit(mime, settings)
    except (smtplib.SMTPException, OSError) as failure:
        error = failure
    with db.transaction() as session:
        message = session.get_one(EmailMessage, message_id, with_for_update=True)
        if message.status != "pending" or message.claim != claim:
            return None
        return _record(message, error, settings)


def _record(message: EmailMessage, error: Exception | None, settings: Settings) -> str:
    message.attempts += 1
    message.lease_until = message.claim = None
    if error is None:
        message.status, message.sent_at, message.next_attempt_at = "sent", utcnow(), None
        return message.status
    message.last_error = f"{type(error).__name__}: {error}"[:300]
    delay = None if _permanent(error) else next_delay(settings.mail_delays, message.attempts)
    if delay is None:
        message.status, message.next_attempt_at = "failed", None
        log.warning("e-mail %s failed for good after %d attempts", message.id, message.attempts)
        return message.status
    message.next_attempt_at = utcnow() + delay
    return message.status
