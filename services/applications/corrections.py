"""Correcting an application: its observations (the application is screened again) or a mistyped
screening id (nothing to screen again)."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Application
from services.applications import transitions
from services.applications.transitions import Action
from services.errors import (
    AlreadySubmitted,
    FieldError,
    InvalidInput,
    NotFound,
    PreconditionRequired,
    StaleVersion,
)
from services.schemas.observations import ChangesBase, Observations
from services.tokens import Caller


def etag(application: Application) -> str:
    """A strong validator that changes with every change to the application, the worker's included."""
    return f'"{application.id}.{application.version}"'


def _merged(application: Application, changes: ChangesBase) -> dict[str, object]:
    values, removed = changes.changes()
    merged = {k: v for k, v in application.observations.items() if k not in removed}
    merged.update(values)
    try:
        return Observations.model_validate(merged).observations()
    except ValidationError as exc:
        errors = [
            FieldError(("applicant", *error["loc"]), str(error["msg"]).removeprefix("Value error, "))
            for error in exc.errors(include_url=False, include_input=False)
        ]
        names = ", ".join(".".join(map(str, error.parts())) for error in errors)
        raise InvalidInput(f"the corrected observations are invalid: {names}", fields=errors) from None


def correct_application(
    session: Session,
    caller: Caller,
    application_id: str,
    changes: ChangesBase | None,
    screening_id: str | None,
    if_match: str | None,
    require_if_match: bool = False,
) -> Application:
    """Apply corrected observations (queuing a new screening) and a corrected screening id; what is
    unchanged changes nothing. Both in the caller's transaction, or neither. With `require_if_match`,
    a request without If-Match is refused (428) before anything is written."""
    application = session.get(Application, application_id, with_for_update=True)
    if application is None or not caller.can_use_site(application.site_id):
        raise NotFound(f"no application {application_id} visible to this token")
    if if_match is None and require_if_match:
        raise PreconditionRequired(
            "send If-Match with the ETag of your last read of this application: this deployment refuses "
            "corrections made without it, so that none overwrites another unseen",
            fields=[FieldError("If-Match", "required")],
        )
    if if_match is not None and if_match.strip() not in (etag(application), "*"):
        raise StaleVersion("the application changed since it was read; read it again")
    if screening_id is not None and screening_id != application.screening_id:
        _rename(session, application, screening_id)
    if changes is not None:
        _correct_observations(session, caller, application, changes)
    return application


def _rename(session: Session, application: Application, screening_id: str) -> None:
    """A mistyped screening id corrected, in any status: the trail notes the change (the id itself
    redacted, services.audit), and the application's version moves so ETags change."""
    taken = session.scalar(
        select(Application.id).where(
            Application.trial_id == application.trial_id,
            Application.site_id == application.site_id,
            Application.screening_id == screening_id,
        )
    )
    if taken is not None:
        raise AlreadySubmitted(
            "another application of this trial and site has that screening id", existing_application=taken
        )
    application.screening_id = screening_id
    application.version += 1
    try:
        session.flush()
    except IntegrityError:
        # Taken meanwhile by a concurrent submission or correction: refused like the check above.
        raise AlreadySubmitted("another application of this trial and site has that screening id") from None


def _correct_observations(
    session: Session, caller: Caller, application: Application, changes: ChangesBase
) -> None:
    transitions.require(application.status, Action.CORRECT)
    observations = _merged(application, changes)
    if observations == application.observations:
        return
    changed = sorted(
        k for k in observations.keys() | application.observations.keys()
        if observations.get(k) != application.observations.get(k)
    )  # fmt: skip
    application.observations = observations
    transitions.reopen(
        session,
        application,
        Action.CORRECT,
        by=caller.token_id,
        reason="observations corrected: " + ", ".join(changed),
    )
