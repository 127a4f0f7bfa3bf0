"""The coordinator's worklist: needs_review applications with the observations that would settle them,
most valuable first.

Each missing observation is valued by trying its possible answers through the application's compiled
criteria (services.eligibility.settling). An application comes first when one observation would decide
it whatever its value; then where few places are left (a site or trial near its target); then where
one observation settles more criteria; then where the same observation is missing from more
applications of the list (one request to the lab settles them all); then the oldest.
"""

from __future__ import annotations

import functools
from collections import Counter
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from models import Application, ApplicationStatus, Role, Site, Trial
from services.eligibility.settling import Settling, settling
from services.schemas.api import MissingOut, WorkItemOut, WorklistQuery
from services.schemas.vocabulary import VOCABULARY, Variable
from services.tokens import Caller
from services.trials.criteria import compiled_version
from services.trials.queries import registry_id

# The oldest undecided applications considered: a worklist is read by a person, and each costs a few
# dozen evaluations (microseconds each).
WORKLIST_LIMIT = 500
NUMBER_PROBES = 41  # values spread over a number's range: enough to cross any threshold of the rules
DATE_PROBES_DAYS = (0, 1, 7, 14, 28, 31, 62, 92, 183, 366, 731, 1827, 3653, 36525)


def _number_probes(variable: Variable) -> list[Any]:
    low, high = float(variable.low or 0), float(variable.high or 0)
    if variable.kind == "int" and high - low <= NUMBER_PROBES:
        return list(range(int(low), int(high) + 1))
    step = (high - low) / (NUMBER_PROBES - 1)
    values = [low + step * n for n in range(NUMBER_PROBES)]
    return [round(v) for v in values] if variable.kind == "int" else values


@functools.lru_cache(maxsize=256)
def probes(reference: date) -> dict[str, list[Any]]:
    """The answers tried for each observation; dates counted back from the reference date. Kept per
    date (the applications of a list share few consent dates); read-only for its users."""
    found: dict[str, list[Any]] = {}
    for variable in VOCABULARY:
        if variable.kind == "bool":
            found[variable.name] = [True, False]
        elif variable.kind == "enum":
            found[variable.name] = list(variable.values)
        elif variable.kind in ("int", "float"):
            found[variable.name] = _number_probes(variable)
        elif variable.kind == "date" and variable.name != "consent_date":
            found[variable.name] = [(reference - timedelta(days=d)).isoformat() for d in DATE_PROBES_DAYS]
    return found


def _reference(application: Application) -> date:
    consent = application.observations.get("consent_date")
    return date.fromisoformat(consent) if isinstance(consent, str) else application.submitted_at.date()


def _places_left(site: Site, trial: Trial) -> int | None:
    left = [
        place.enrollment_target - place.enrolled_count
        for place in (site, trial)
        if place.enrollment_target is not None
    ]
    return min(left) if left else None


def worklist(session: Session, caller: Caller, query: WorklistQuery) -> list[WorkItemOut]:
    """The caller's needs_review applications (its sites; every site for an admin), most valuable first."""
    site = aliased(Site)
    statement = (
        select(Application, site, Trial)
        .join(site, site.site_id == Application.site_id)
        .join(Trial, Trial.trial_id == Application.trial_id)
        .where(
            Application.status == ApplicationStatus.NEEDS_REVIEW.value,
            Application.criteria_version.is_not(None),  # dead letters wait for an operator, not a test
        )
        .order_by(Application.submitted_at, Application.id)
        .limit(WORKLIST_LIMIT)
    )
    if caller.role is not Role.ADMIN:
        statement = statement.where(Application.site_id.in_(caller.site_ids))
    if query.trial_id is not None:
        statement = statement.where(Application.trial_id == registry_id(query.trial_id))
    if query.site_id is not None:
        statement = statement.where(Application.site_id == query.site_id)
    rows = session.execute(statement).all()
    valued: list[tuple[Application, int | None, list[Settling]]] = []
    for application, its_site, trial in rows:
        assert application.criteria_version is not None  # filtered above
        compiled = compiled_version(session, application.trial_id, application.criteria_version)
        found = settling(
            compiled,
            application.observations,
            application.submitted_at.date(),
            probes(_reference(application)),
        )
        if found:
            valued.append((application, _places_left(its_site, trial), found))
    shared = Counter(s.variable for _, _, found in valued for s in found)
    valued.sort(key=lambda item: _value(item, shared))
    return [
        WorkItemOut(
            application_id=application.id,
            trial_id=application.trial_id,
            site_id=application.site_id,
            screening_id=application.screening_id,
            submitted_at=application.submitted_at,
            places_left=places_left,
            missing=[
                MissingOut(
                    variable=s.variable,
                    settles_criteria=list(s.settles_criteria),
                    settles_decision=s.settles_decision,
                )
                for s in found
            ],
        )
        for application, places_left, found in valued
    ]


def _value(item: tuple[Application, int | None, list[Settling]], shared: Counter[str]) -> tuple[Any, ...]:
    application, places_left, found = item
    best = found[0]
    return (
        not best.settles_decision,
        places_left if places_left is not None else float("inf"),
        -len(best.settles_criteria),
        -max(shared[s.variable] for s in found),
        application.submitted_at,
        application.id,
    )
