"""Intake use case: accept an applicant, storing the application and its event in one transaction."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Application, IdempotencyRecord, TrialStatus
from models.base import utcnow
from models.db import Database
from services.applications import transitions
from services.applications.queries import to_view
from services.catalog import CatalogAt, SiteFacts, TrialFacts
from services.errors import (
    AlreadySubmitted,
    FieldError,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    InvalidInput,
    NotAllowed,
    NotRecruiting,
)
from services.ids import new_id
from services.schemas.api import ApplicationOut, SubmitApplication
from services.tokens import Caller
from services.trials.queries import registry_id

MAX_IDEMPOTENCY_KEY = 255


@dataclass(frozen=True)
class Submission:
    """The accepted application as first shown to the caller; `replayed` when a retry with the same
    Idempotency-Key got that first answer again instead of a second application."""

    application_id: str
    body: dict[str, Any]
    replayed: bool = False


def application_location(application_id: str) -> str:
    return f"/api/v1/applications/{application_id}"


def fingerprint(payload: Any) -> str:
    """A digest of the request body as parsed, so key order and spacing do not matter."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_idempotency_key(raw: str | None) -> str | None:
    """The key of an `Idempotency-Key` header, a structured-field string or a bare token; 400 if malformed."""
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable() or '"' in key:
        raise InvalidIdempotencyKey("Idempotency-Key must be 1-255 printable ASCII characters")
    return key


def submit_application(
    db: Database,
    caller: Caller,
    request: SubmitApplication,
    key: str | None,
    body_fingerprint: str,
    ttl_hours: int,
    catalog: CatalogAt,
) -> Submission:
    """Store the application and `application.submitted` together, or replay the first answer to this key.

    The trial and site come from `catalog`, this process's copies as of the versions the request read.
    An applicant submitted before is found by the insert itself (ON CONFLICT DO NOTHING on the unique
    trial, site and screening id), never by a unique violation, which would put the key's values, the
    screening id among them, in PostgreSQL's server log."""
    for _ in range(2):
        try:
            with db.transaction() as session:
                return _submit(session, caller, request, key, body_fingerprint, ttl_hours, catalog)
        except IntegrityError:
            # A concurrent request committed the same key or applicant first; the next pass sees it.
            continue
    raise AlreadySubmitted("a concurrent request is submitting this applicant; retry")


def _replay(session: Session, caller: Caller, key: str, body_fingerprint: str) -> Submission | None:
    record = session.get(IdempotencyRecord, (caller.token_id, key))
    if record is None:
        return None
    if record.expires_at <= utcnow():
        session.delete(record)
        session.flush()
        return None
    if record.fingerprint != body_fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
    return Submission(record.body["id"], _as_first_shown(record.body), replayed=True)


def _as_first_shown(body: dict[str, Any]) -> dict[str, Any]:
    """The stored answer with its fields in the order it was first shown, so that the replay is the
    same bytes: PostgreSQL's JSONB keeps an object's keys in an order of its own, which the view's
    schema undoes. A body of an older shape (a record from before an upgrade) is replayed as stored."""
    try:
        return ApplicationOut.model_validate(body).model_dump(mode="json")
    except ValidationError:
        return body


def _trial_and_site(
    session: Session, catalog: CatalogAt, caller: Caller, trial_id: str, site_id: str
) -> tuple[TrialFacts, SiteFacts]:
    """The trial (by registry id, case-insensitively) and its site; 422 naming the field for either that
    does not exist, 403 for a site the token may not submit to."""
    place = catalog.place(session, registry_id(trial_id), site_id)
    if place is None:
        raise InvalidInput.of("trial_id", f"no trial {trial_id}")
    trial, site = place.trial, place.site
    if site is None:
        raise InvalidInput.of("site_id", f"no site {site_id} in trial {trial.trial_id}")
    if not caller.can_use_site(site_id):
        raise NotAllowed(f"this token may not submit to site {site_id}")
    return trial, site


def _check_recruiting(trial_status: str, site: SiteFacts) -> None:
    if not TrialStatus(trial_status).accepts_applications:
        raise NotRecruiting(f"the trial is {trial_status} and accepts no new applications")
    if not TrialStatus(site.status).accepts_applications:
        raise NotRecruiting(f"site {site.site_id} is {site.status} and accepts no new applications")


def _check_has_criteria(trial: TrialFacts) -> None:
    # Nothing could screen the application: it would wait in `submitted` for ever.
    if trial.current_criteria_version is None:
        raise NotRecruiting(
            f"trial {trial.trial_id} has no criteria yet and accepts no applications until an admin "
            "attaches them",
            fields=[FieldError("trial_id", "the trial has no criteria yet")],
        )


def _submit(
    session: Session,
    caller: Caller,
    request: SubmitApplication,
    key: str | None,
    body_fingerprint: str,
    ttl_hours: int,
    catalog: CatalogAt,
) -> Submission:
    if key is not None and (replayed := _replay(session, caller, key, body_fingerprint)) is not None:
        return replayed
    trial, site = _trial_and_site(session, catalog, caller, request.trial_id, request.site_id)
    _check_recruiting(trial.overall_status, site)
    _check_has_criteria(trial)
    application = _new_application(trial.trial_id, site.site_id, request)
    if not transitions.submit(session, application, by=caller.token_id):
        return _submitted_already(session, caller, application, key, body_fingerprint)
    view = to_view(session, application, [], with_observations=False)
    submission = Submission(application.id, view.model_dump(mode="json"))
    if key is not None:
        record = {
            "scope": caller.token_id,
            "key": key,
            "fingerprint": body_fingerprint,
            # The record keeps the whole first answer (202 and its headers), the shape processes of
            # earlier versions replay from during a rolling upgrade; this version rebuilds the headers
            # from the application id.
            "status_code": 202,
            "body": submission.body,
            "headers": {"Location": application_location(application.id), "Retry-After": "1"},
            "created_at": utcnow(),
            "expires_at": utcnow() + timedelta(hours=ttl_hours),
        }
        session.execute(insert(cast(Table, IdempotencyRecord.__table__)), record)
    return submission


def _submitted_already(
    session: Session, caller: Caller, application: Application, key: str | None, body_fingerprint: str
) -> Submission:
    """The applicant was stored before: a retry with our key (it may have committed since the replay
    lookup, and under READ COMMITTED this statement sees it) replays its answer; anything else is 409."""
    if key is not None and (replayed := _replay(session, caller, key, body_fingerprint)) is not None:
        return replayed
    existing = session.scalar(
        select(Application.id).where(
            Application.trial_id == application.trial_id,
            Application.site_id == application.site_id,
            Application.screening_id == application.screening_id,
        )
    )
    raise AlreadySubmitted(
        f"applicant {application.screening_id} was already submitted to this trial at this site",
        existing_application=existing,
    )


def _new_application(trial_id: str, site_id: str, request: SubmitApplication) -> Application:
    return Application(
        id=new_id("app"),
        trial_id=trial_id,
        site_id=site_id,
        screening_id=request.applicant.screening_id,
        observations=request.applicant.observations(),
        submitted_at=utcnow(),
        screening_round=1,
        screening_deliveries=0,
        version=1,
    )
