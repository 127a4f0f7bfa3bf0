"""Correcting an application's observations: the application is screened again."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.orm import Session

from models import Application
from services.applications import transitions
from services.applications.transitions import Action
from services.errors import FieldError, InvalidInput, NotFound, StaleVersion
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


def correct_observations(
    session: Session, caller: Caller, application_id: str, changes: ChangesBase, if_match: str | None
) -> Application:
    """Apply added or corrected observations and queue a new screening; unchanged data change nothing."""
    application = session.get(Application, application_id, with_for_update=True)
    if application is None or not caller.can_use_site(application.site_id):
        raise NotFound(f"no application {application_id} visible to this token")
    if if_match is not None and if_match.strip() not in (etag(application), "*"):
        raise StaleVersion("the application changed since it was read; read it again")
    transitions.require(application.status, Action.CORRECT)
    observations = _merged(application, changes)
    if observations == application.observations:
        return application
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
    return application
