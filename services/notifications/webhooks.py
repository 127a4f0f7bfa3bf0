"""Webhook subscriptions and delivery, following the Standard Webhooks specification.

The outbox relay writes a delivery row as it publishes the event (services.notifications.fanout). The
dispatcher leases due rows and hands their ids to a Celery task, which sends one attempt and records
it; the retry schedule lives in the rows (next_attempt_at), never in broker countdowns, which Redis may
deliver twice.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import secrets
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from config import Settings
from models import Event, Role, WebhookAttempt, WebhookDelivery, WebhookSubscription
from models.base import utcnow
from models.db import Database
from models.sealing import (
    Keyring,
    SealingError,
    binding,
    keyring_of,
    open_with_secret_key,
    sealed_with_secret_key,
)
from services.audit import note
from services.errors import Conflict, EventExpired, InvalidInput, NotFound
from services.events.catalogue import WebhookDeliveryFailed, WebhookDisabled
from services.events.outbox import add_event
from services.events.wakeup import SENDS, wake
from services.ids import new_id
from services.notifications import scheduled_sends
from services.notifications.fanout import for_admin
from services.notifications.retry import next_delay, read_retry_after
from services.notifications.targets import Target, UnsafeTarget, check_target
from services.reporting.feed import envelope
from services.tokens import Caller

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the specification's prefix, not a secret
MAX_RESPONSE_BYTES = 4096


# --- secrets and signatures ------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


CURRENT, PREVIOUS = "secret_sealed", "previous_secret_sealed"  # the columns a secret is sealed in


def secret_binding(subscription_id: str, column: str = CURRENT) -> bytes:
    """The associated data of a subscription's sealed secret: its table, column and id."""
    return binding(WebhookSubscription.__tablename__, column, subscription_id)


def seal(keyring: Keyring, subscription_id: str, secret: str, column: str = CURRENT) -> str:
    """The secret sealed at rest like observations (models.sealing): under the current data key, bound
    to its subscription's row and column, so that copied into another row (or from the previous
    secret's column into the current one) it does not open."""
    return keyring.seal(secret, secret_binding(subscription_id, column))


def unseal(
    keyring: Keyring, subscription_id: str, sealed: str, secret_key: bytes, column: str = CURRENT
) -> str:
    """The secret sealed for this subscription; SealingError naming the subscription (never the text)
    if it does not open there. A secret sealed before revision 0012 opens with ACCRUAL_SECRET_KEY."""
    try:
        if sealed_with_secret_key(sealed):
            return open_with_secret_key(sealed, secret_key)
        return str(keyring.open(sealed, secret_binding(subscription_id, column)))
    except SealingError as exc:
        raise SealingError(f"webhook_subscriptions.{column} of {subscription_id}: {exc}") from None


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,` + base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signatures(keys: tuple[str, ...], message_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: one `v1,` entry per secret, space-separated (the current secret's
    first; during a rotation's overlap the previous one's too, so either verifies)."""
    return " ".join(sign(secret, message_id, timestamp, body) for secret in keys)


# --- subscriptions -----------------------------------------------------------------------------------


def subscription_view(subscription: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "url": subscription.url,
        "event_types": subscription.event_types,
        "status": "disabled" if subscription.disabled_at else "active",
        "disabled_reason": subscription.disabled_reason,
        "created_at": subscription.created_at,
        "previous_secret_until": _overlap_end(subscription),
    }


def _overlap_end(subscription: WebhookSubscription) -> datetime | None:
    """Until when the replaced secret still signs; None once it no longer does."""
    until = subscription.previous_secret_until
    return until if until is not None and until > utcnow() else None


def create_subscription(
    session: Session, caller: Caller, url: str, event_types: list[str], settings: Settings
) -> tuple[WebhookSubscription, str]:
    """A new subscription and its secret, which is returned now and never again."""
    try:
        check_target(url, settings.webhook_allow_private, settings.webhook_ports)
    except UnsafeTarget as refused:
        raise InvalidInput.of("url", str(refused)) from None
    secret, subscription_id = new_secret(), new_id("whk")
    subscription = WebhookSubscription(
        id=subscription_id,
        url=url,
        event_types=sorted(set(event_types)),
        owner_token_id=caller.token_id,
        sponsor=None if caller.role is Role.ADMIN else caller.sponsor,
        secret_sealed=seal(keyring_of(session.get_bind().dialect), subscription_id, secret),
        created_at=utcnow(),
    )
    session.add(subscription)
    return subscription, secret


def _owns(caller: Caller, subscription: WebhookSubscription) -> bool:
    """Admins manage every subscription; a sponsor its organisation's."""
    if subscription.deleted_at is not None:
        return False
    return caller.role is Role.ADMIN or caller.speaks_for(subscription.sponsor)


def list_subscriptions(session: Session, caller: Caller) -> list[WebhookSubscription]:
    query = select(WebhookSubscription).where(WebhookSubscription.deleted_at.is_(None))
    subscriptions = session.scalars(query.order_by(WebhookSubscription.created_at))
    return [s for s in subscriptions if _owns(caller, s)]


def find_subscription(session: Session, caller: Caller, subscription_id: str) -> WebhookSubscription:
    found = session.get(WebhookSubscription, subscription_id)
    if found is None or not _owns(caller, found):
        raise NotFound(f"no webhook {subscription_id} visible to this token")
    return found


def rotate_secret(
    session: Session, caller: Caller, subscription_id: str, settings: Settings
) -> tuple[WebhookSubscription, str]:
    """A new signing secret for the subscription, returned now and never again. For
    ACCRUAL_WEBHOOK_SECRET_OVERLAP_HOURS the secret it replaces still signs too (a second `v1`
    signature), so the receiver can switch to the new one without refusing a delivery meanwhile."""
    subscription = find_subscription(session, caller, subscription_id)
    session.refresh(subscription, with_for_update=True)  # two rotations at once: one after the other
    keyring = keyring_of(session.get_bind().dialect)
    replaced = unseal(keyring, subscription.id, subscription.secret_sealed, settings.signing_key())
    secret = new_secret()
    overlap = timedelta(hours=settings.webhook_secret_overlap_hours)
    keep = overlap > timedelta(0)
    subscription.previous_secret_sealed = seal(keyring, subscription.id, replaced, PREVIOUS) if keep else None
    subscription.previous_secret_until = utcnow() + overlap if keep else None
    subscription.secret_sealed = seal(keyring, subscription.id, secret)
    # Said in so many words: the sealed columns never enter the trail, and with no overlap nothing
    # else of the row changes.
    hours = overlap / timedelta(hours=1)
    note(session, "webhook", subscription.id, "rotate_secret", {"overlap_hours": hours})
    return subscription, secret


def signing_secrets(
    session: Session, subscription: WebhookSubscription, settings: Settings
) -> tuple[str, ...]:
    """The secrets a delivery is signed with now: the current one, and the previous one until its
    overlap ends."""
    keyring = keyring_of(session.get_bind().dialect)
    current = unseal(keyring, subscription.id, subscription.secret_sealed, settings.signing_key())
    previous = subscription.previous_secret_sealed
    if previous is None or _overlap_end(subscription) is None:
        return (current,)
    return current, unseal(keyring, subscription.id, previous, settings.signing_key(), PREVIOUS)


def delete_subscription(session: Session, caller: Caller, subscription_id: str) -> None:
    """Stop the subscription: nothing more is sent, its pending deliveries end as cancelled."""
    subscription = find_subscription(session, caller, subscription_id)
    subscription.deleted_at = utcnow()
    _cancel_pending(session, subscription.id)


def _cancel_pending(session: Session, subscription_id: str) -> None:
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == "pending")
        .values(status="cancelled", next_attempt_at=None, completed_at=utcnow())
    )


def delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "next_attempt_at": delivery.next_attempt_at if delivery.status == "pending" else None,
        "created_at": delivery.created_at,
        "completed_at": delivery.completed_at,
        "attempts": [
            {
                "attempted_at": a.attempted_at,
                "status_code": a.status_code,
                "latency_ms": round(a.latency_ms, 1),
                "error": a.error,
            }
            for a in delivery.attempts
        ],
    }


def list_deliveries(
    session: Session, caller: Caller, subscription_id: str, status: str | None, limit: int
) -> list[WebhookDelivery]:
    subscription = find_subscription(session, caller, subscription_id)
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
    return list(session.scalars(query))


def redeliver(session: Session, caller: Caller, subscription_id: str, delivery_id: str) -> WebhookDelivery:
    """Send a finished delivery again, from the schedule's start, with the same webhook-id."""
    subscription = find_subscription(session, caller, subscription_id)
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.subscription_id != subscription.id:
        raise NotFound(f"no delivery {delivery_id} of webhook {subscription_id}")
    if subscription.disabled_at is not None:
        raise Conflict("the webhook is disabled; create a new subscription to re-enable")
    if delivery.status == "pending":
        raise Conflict("the delivery is pending: it is being sent already")
    if session.scalar(select(Event.seq).where(Event.id == delivery.event_id)) is None:
        raise EventExpired(f"event {delivery.event_id} is past the retention period and was purged")
    delivery.status = "pending"
    delivery.round_attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.lease_until = delivery.claim = None
    delivery.completed_at = None
    wake(session, SENDS)
    return delivery


# --- dispatch and delivery ------------------------------------------------------------------------


def lease_for(settings: Settings) -> timedelta:
    """Long enough for one attempt to time out and be recorded, short enough to recover a lost task."""
    return timedelta(seconds=3 * settings.webhook_timeout_seconds)


def claim_due(session: Session, lease: timedelta, limit: int = 100) -> list[tuple[str, str]]:
    """Lease up to `limit` due deliveries, each under a new claim: (delivery id, claim) pairs."""
    return scheduled_sends.claim_due(session, WebhookDelivery, lease, limit)


@dataclass(frozen=True)
class Request:
    url: str
    message_id: str
    body: bytes
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Response:
    status_code: int | None
    latency_ms: float
    error: str | None = None
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _request(session: Session, delivery_id: str, claim: str, settings: Settings) -> Request | None:
    """What to send for a pending delivery still under `claim`; None if there is nothing to send."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != "pending" or delivery.claim != claim:
        return None
    scheduled_sends.begin_attempt(delivery, lease_for(settings))
    subscription = session.get_one(WebhookSubscription, delivery.subscription_id)
    if subscription.deleted_at is not None or subscription.disabled_at is not None:
        delivery.status, delivery.next_attempt_at, delivery.completed_at = "cancelled", None, utcnow()
        return None
    event = session.scalars(select(Event).where(Event.id == delivery.event_id)).one_or_none()
    if event is None:  # purged past retention while a redelivery was being asked for: nothing to send
        delivery.status, delivery.next_attempt_at, delivery.completed_at = "cancelled", None, utcnow()
        return None
    # Built at each attempt for this subscriber: a sponsor's body never names an applicant's criteria.
    seen = envelope(event, for_admin=for_admin(subscription))
    body = json.dumps(seen, separators=(",", ":"), ensure_ascii=False).encode()
    return Request(subscription.url, event.id, body, signing_secrets(session, subscription, settings))


@functools.cache
def _client(timeout: float) -> httpx.Client:
    """One client per process (made after a worker's fork, on first use): building one loads the CA
    bundle, about 30 ms of CPU, which was most of a delivery's cost. No redirect is ever followed, and
    no connection is kept: every attempt meets the endpoint as it is now. Its own transport keeps the
    environment's proxies out of the way, since the connection must go to the address that was checked
    (SSL_CERT_FILE and SSL_CERT_DIR still choose the CA bundle)."""
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
    return httpx.Client(transport=transport, follow_redirects=False, timeout=timeout)


def _pinned(target: Target) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """The URL to POST to, with the Host header and TLS server name to send along.

    With private targets refused, the URL names the first address the check judged, so the connection
    goes where the check looked with no second lookup (DNS rebinding); Host, SNI and the certificate's
    verification keep the original name. No connection is kept, so none made for another name that
    shares the address is ever reused."""
    try:
        url = httpx.URL(target.url)
    except httpx.InvalidURL:
        raise UnsafeTarget("the URL is malformed") from None
    if not target.addresses:  # private targets are allowed: there is nothing to protect by pinning
        return url, {}, {}
    if url.host != target.host or (url.port or 443) != target.port:
        raise UnsafeTarget("the URL is malformed")  # the two parsers disagree: send nothing
    return (
        url.copy_with(host=target.addresses[0]),
        {"host": url.netloc.decode("ascii")},
        {"sni_hostname": url.raw_host.decode("ascii")},
    )


def _caused_by(failure: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = failure
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _failure(failure: Exception) -> str:
    """A coarse name for why an attempt failed. Subscribers read it, so never the OS's text, an address
    or a port: those would let them map what the workers can reach."""
    if isinstance(failure, httpx.TimeoutException):
        return "timed out"
    if _caused_by(failure, ssl.SSLError):
        return "TLS failed"
    if isinstance(failure, httpx.ProtocolError):
        return "protocol error"
    if isinstance(failure, httpx.TransportError):
        return "connection failed"
    return "request failed"


def send(request: Request, settings: Settings) -> Response:
    """One attempt: signed POST, no redirects followed, at most a few KiB of the answer read."""
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        target = check_target(request.url, settings.webhook_allow_private, settings.webhook_ports)
        url, pinning, extensions = _pinned(target)
    except UnsafeTarget as refused:
        return Response(None, elapsed(), f"refused: {refused}"[:300])
    timestamp = int(time.time())
    headers = {
        **pinning,
        "content-type": "application/json",
        "user-agent": "Accrual-Webhooks/1",
        "webhook-id": request.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures(request.secrets, request.message_id, timestamp, request.body),
    }
    try:
        client = _client(settings.webhook_timeout_seconds)
        with client.stream(
            "POST", url, content=request.body, headers=headers, extensions=extensions
        ) as answer:
            read = 0
            for chunk in answer.iter_bytes():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
            return Response(
                answer.status_code, elapsed(), None, read_retry_after(answer.headers.get("retry-after"))
            )
    except Exception as failure:  # whatever went wrong, the attempt failed and must be recorded as such
        return Response(None, elapsed(), _failure(failure))


def _disable(session: Session, subscription: WebhookSubscription, reason: str) -> None:
    subscription.disabled_at = utcnow()
    subscription.disabled_reason = reason
    _cancel_pending(session, subscription.id)
    add_event(session, WebhookDisabled(webhook_id=subscription.id, reason=reason), trial_id=None)
    log.warning("webhook %s disabled: %s", subscription.id, reason)


def _tell_the_owner(session: Session, delivery: WebhookDelivery, response: Response) -> None:
    """The dead letter is announced in the feed, and by e-mail to the owner (services.notifications.mail);
    never for a failed notice of this kind, which would announce itself again and again."""
    if delivery.event_type == WebhookDeliveryFailed.event_type:
        return
    attempts = session.scalar(
        select(func.count()).select_from(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
    )
    notice = WebhookDeliveryFailed(
        webhook_id=delivery.subscription_id,
        delivery_id=delivery.id,
        event_id=delivery.event_id,
        attempts=int(attempts or 0),
        last_status_code=response.status_code,
    )
    add_event(session, notice, trial_id=None)


def record(
    session: Session, delivery_id: str, claim: str, response: Response, settings: Settings
) -> str | None:
    """Keep the attempt and move the delivery on: succeeded, retried later, or failed."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != "pending" or delivery.claim != claim:
        return None
    subscription = session.get_one(WebhookSubscription, delivery.subscription_id, with_for_update=True)
    now = utcnow()
    session.add(
        WebhookAttempt(
            id=new_id("att"),
            delivery_id=delivery.id,
            attempted_at=now,
            status_code=response.status_code,
            latency_ms=response.latency_ms,
            error=response.error,
        )
    )
    delivery.round_attempts += 1
    delivery.lease_until = delivery.claim = None
    if response.succeeded:
        delivery.status, delivery.next_attempt_at, delivery.completed_at = "succeeded", None, now
        subscription.failing_since = None
        return delivery.status
    subscription.failing_since = subscription.failing_since or now
    delay = next_delay(settings.webhook_delays, delivery.round_attempts, response.retry_after)
    if response.status_code == 410 or delay is None:
        delivery.status, delivery.next_attempt_at, delivery.completed_at = "failed", None, now
        _tell_the_owner(session, delivery, response)
    else:
        delivery.next_attempt_at = now + delay
    if response.status_code == 410:
        _disable(session, subscription, "the endpoint answered 410 Gone")
    elif now - subscription.failing_since >= timedelta(hours=settings.webhook_disable_after_hours):
        _disable(
            session,
            subscription,
            f"the endpoint has failed since {subscription.failing_since:%Y-%m-%d %H:%M} UTC",
        )
    return delivery.status


def deliver(db: Database, delivery_id: str, claim: str, settings: Settings) -> str | None:
    """Send one attempt of a claimed delivery and record it; the status it ends in, or None if the
    claim is no longer current (a re-dispatch took over, or the delivery ended meanwhile)."""
    with db.transaction() as session:
        request = _request(session, delivery_id, claim, settings)
    if request is None:
        return None
    response = send(request, settings)
    with db.transaction() as session:
        return record(session, delivery_id, claim, response, settings)
