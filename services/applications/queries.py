"""Reading applications: one with its decision and history, or a caller's cursor-paginated list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.orm import Session, selectinload

from models import Application, ApplicationStatus, Role, Screening
from services.applications.explanations import Outcome, criteria_view, reasons, remedies_of
from services.applications.results import StoredResult, read_results
from services.eligibility.remedies import Remedies
from services.errors import NotFound
from services.pagination import decode_cursor, encode_cursor
from services.randomisation.schemes import allocation_out, allocations_of
from services.schemas.api import (
    AllocationOut,
    ApplicationOut,
    ApplicationPage,
    ApplicationQuery,
    CriterionOut,
    HistoryOut,
    ReasonOut,
)
from services.tokens import Caller
from services.trials.criteria import compiled_version

# Only an enrolment allocates; a participant withdrawn afterwards keeps the allocation.
ALLOCATED_STATUSES = frozenset({ApplicationStatus.ENROLLED.value, ApplicationStatus.WITHDRAWN.value})


def _results_of(session: Session, application_ids: list[str]) -> dict[str, list[StoredResult]]:
    """Per application, the per-criterion results of its latest screening, in protocol order."""
    if not application_ids:
        return {}
    latest_round = (
        select(Screening.application_id, func.max(Screening.round).label("round"))
        .where(Screening.application_id.in_(application_ids))
        .group_by(Screening.application_id)
        .subquery()
    )
    screenings = session.scalars(
        select(Screening).join(
            latest_round,
            (Screening.application_id == latest_round.c.application_id)
            & (Screening.round == latest_round.c.round),
        )
    )
    return {screening.application_id: read_results(screening.results) for screening in screenings}


def _outcomes(results: list[StoredResult]) -> list[Outcome]:
    return [Outcome(r.criterion_id, r.kind, r.outcome, tuple(r.missing), r.note) for r in results]


def to_view(
    session: Session,
    application: Application,
    results: list[StoredResult],
    with_observations: bool,
    allocation: AllocationOut | None = None,
) -> ApplicationOut:
    """The application as answered, its decision explained from the criteria version it was made under:
    each criterion with its text and reading, the reasons, and an ineligible applicant's remedies."""
    criteria: list[CriterionOut] = []
    reasons_: list[ReasonOut] = []
    found = Remedies()
    if results and application.criteria_version is not None:
        compiled = compiled_version(session, application.trial_id, application.criteria_version)
        outcomes = _outcomes(results)
        criteria = criteria_view(compiled, outcomes)
        if application.decision is not None:
            reasons_ = reasons(compiled, outcomes)
        if application.decision == "ineligible":
            found = remedies_of(compiled, application.observations, application.submitted_at.date())
    return ApplicationOut(
        id=application.id,
        trial_id=application.trial_id,
        site_id=application.site_id,
        screening_id=application.screening_id,
        status=application.status,  # type: ignore[arg-type]
        decision=application.decision,  # type: ignore[arg-type]
        criteria=criteria,
        reasons=reasons_,
        eligible_from=found.eligible_from,
        renew=list(found.renew),
        criteria_version=application.criteria_version,
        submitted_at=application.submitted_at,
        decided_at=application.decided_at,
        history=[HistoryOut(status=h.status, at=h.at, by=h.by, reason=h.reason) for h in application.history],  # type: ignore[arg-type]
        allocation=allocation,
        observations=application.observations if with_observations else None,
    )


def get_application(session: Session, caller: Caller, application_id: str) -> ApplicationOut:
    """One application with its latest decision; 404 as well when it belongs to a site the caller lacks."""
    application = session.get(Application, application_id, options=[selectinload(Application.history)])
    if application is None or not caller.can_use_site(application.site_id):
        raise NotFound(f"no application {application_id} visible to this token")
    results = _results_of(session, [application.id]).get(application.id, [])
    allocation = _allocations(session, caller, [application.id]).get(application.id)
    return to_view(session, application, results, with_observations=True, allocation=allocation)


def _allocations(session: Session, caller: Caller, application_ids: list[str]) -> dict[str, AllocationOut]:
    """The allocations of those applications that were randomised, as `caller` may see them."""
    found = allocations_of(session, application_ids)
    return {application_id: allocation_out(row, caller) for application_id, row in found.items()}


def _visible(caller: Caller, query: ApplicationQuery) -> Select[Application]:
    statement = select(Application).options(selectinload(Application.history))
    if caller.role is not Role.ADMIN:
        statement = statement.where(Application.site_id.in_(caller.site_ids))
    if query.site_id is not None:
        statement = statement.where(Application.site_id == query.site_id)
    if query.screening_id is not None:
        statement = statement.where(Application.screening_id == query.screening_id)
    if query.trial_id is not None:
        statement = statement.where(Application.trial_id == query.trial_id.upper())
    if query.status is not None:
        statement = statement.where(Application.status == query.status)
    return statement


def list_applications(
    session: Session, caller: Caller, query: ApplicationQuery, key: bytes
) -> ApplicationPage:
    """Newest first, keyset-paginated on (submitted_at, id) so pages stay stable while rows arrive."""
    scope = f"{caller.token_id}|{query.trial_id}|{query.site_id}|{query.status}"
    if query.screening_id is not None:  # added only when used: cursors made before it stay valid
        scope += f"|{query.screening_id}"
    statement = _visible(caller, query)
    if query.cursor:
        position = decode_cursor(query.cursor, scope, key)
        after = (datetime.fromisoformat(position["t"]), position["i"])
        statement = statement.where(tuple_(Application.submitted_at, Application.id) < after)
    rows = list(
        session.scalars(
            statement.order_by(Application.submitted_at.desc(), Application.id.desc()).limit(query.limit + 1)
        )
    )
    page, more = rows[: query.limit], len(rows) > query.limit
    results = _results_of(session, [a.id for a in page])
    allocations = _allocations(session, caller, [a.id for a in page if a.status in ALLOCATED_STATUSES])
    next_cursor = None
    if more:
        last = page[-1]
        next_cursor = encode_cursor({"t": last.submitted_at.isoformat(), "i": last.id}, scope, key)
    return ApplicationPage(
        items=[
            to_view(
                session, a, results.get(a.id, []), with_observations=False, allocation=allocations.get(a.id)
            )
            for a in page
        ],
        next_cursor=next_cursor,
    )
