"""/api/v1/applications: submit an applicant, read one application, list applications."""

from __future__ import annotations

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag

from models import Application, ApplicationStatus, Role, WithdrawalReason
from services.api.context import caller, catalog, cursor_key, database, settings, wants_fhir
from services.applications.corrections import correct_application, etag
from services.applications.history import revisions, state_at
from services.applications.intake import (
    application_location,
    fingerprint,
    parse_idempotency_key,
    submit_application,
)
from services.applications.lifecycle import enroll, review, withdraw
from services.applications.queries import get_application, list_applications
from services.audit import chain_pending_entries, note_page_read, note_read
from services.errors import NotFound
from services.randomisation.schemes import unblind
from services.schemas.api import (
    ApplicationHistoryOut,
    ApplicationOut,
    ApplicationPage,
    ApplicationPath,
    ApplicationQuery,
    CorrectApplication,
    DltIn,
    EnrollApplication,
    FormatQuery,
    HistoryQuery,
    ProblemOut,
    ReviewApplication,
    RevisionOut,
    SubmitApplication,
    WithdrawApplication,
)
from services.schemas.fhir import FHIR_JSON, research_subject
from services.schemas.randomisation import UnblindIn
from services.tokens import Caller
from services.trials.dose_escalation import record_dlt

tag = Tag(name="applications", description="Applicants submitted by site coordinators and their decisions")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
blueprint = APIBlueprint(
    "applications", __name__, url_prefix="/api/v1/applications", abp_tags=[tag], abp_security=SECURITY
)


@blueprint.post(
    "",
    responses={
        202: ApplicationOut,
        400: ProblemOut,
        401: ProblemOut,
        403: ProblemOut,
        409: ProblemOut,
        413: ProblemOut,
        415: ProblemOut,
        422: ProblemOut,
    },
)
def submit(body: SubmitApplication) -> Response:
    """Submit an applicant; answers 202 at once, the decision follows asynchronously.

    An `Idempotency-Key` header makes retries safe: the same key with the same body replays the first
    answer (kept 24 hours); with another body it is refused with 422.
    """
    who = caller(Role.COORDINATOR)
    key = parse_idempotency_key(request.headers.get("Idempotency-Key"))
    answer = submit_application(
        database(),
        who,
        body,
        key,
        fingerprint(request.get_json()),
        settings().idempotency_ttl_hours,
        catalog(),
    )
    response = jsonify(answer.body)
    response.status_code = 202
    response.headers.update({"Location": application_location(answer.application_id), "Retry-After": "1"})
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@blueprint.get("/<application_id>", responses={200: ApplicationOut, 401: ProblemOut, 404: ProblemOut})
def read(path: ApplicationPath, query: FormatQuery) -> Response:
    """An application: status, decision, every criterion's outcome and what was missing, history.

    Also as a FHIR R4B ResearchSubject (`?format=fhir` or Accept: application/fhir+json).
    """
    who = caller(Role.COORDINATOR, Role.ADMIN)
    with database().reading() as session:
        view = get_application(session, who, path.application_id)
        application = session.get_one(Application, view.id)
        tag = etag(application)
        if wants_fhir(query.format):
            arm = view.allocation.arm_id if view.allocation is not None else None
            response = jsonify(research_subject(application, arm))
            response.mimetype = FHIR_JSON
        else:
            response = jsonify(view.model_dump(mode="json"))
    with database().transaction() as session:
        note_read(session, "application", view.id)  # the answer carries clinical data
    response.headers["ETag"] = tag
    return response


@blueprint.get(
    "/<application_id>/history",
    responses={
        200: ApplicationHistoryOut,
        401: ProblemOut,
        403: ProblemOut,
        404: ProblemOut,
        422: ProblemOut,
    },
)
def application_history(path: ApplicationPath, query: HistoryQuery) -> Response:
    """Every state the application has had, rebuilt from the audit trail, with who changed it, when,
    through which process and request; earlier observations and screening ids included (admin).

    With `at`, only the state in force at that moment: 404 if the application was not yet submitted.
    """
    caller(Role.ADMIN)
    chain_pending_entries(database())  # the newest change is in the trail before it is read
    with database().reading() as session:
        if query.at is None:
            found = revisions(session, path.application_id)
        else:
            standing = state_at(session, path.application_id, query.at)
            if standing is None:
                raise NotFound(f"application {path.application_id} was not yet submitted at {query.at}")
            found = [standing]
        items = [RevisionOut.model_validate(revision, from_attributes=True) for revision in found]
    with database().transaction() as session:
        note_read(session, "application", path.application_id)  # earlier clinical values were shown
    body = ApplicationHistoryOut(application_id=path.application_id, revisions=items)
    return jsonify(body.model_dump(mode="json"))


@blueprint.patch(
    "/<application_id>",
    responses={
        200: ApplicationOut,
        202: ApplicationOut,
        401: ProblemOut,
        404: ProblemOut,
        409: ProblemOut,
        412: ProblemOut,
        422: ProblemOut,
        428: ProblemOut,
    },
)
def correct(path: ApplicationPath, body: CorrectApplication) -> Response:
    """Add or correct observations (null removes one); the application is screened again (202).
    Correct a mistyped `screening_id` (200; 409 when another application of the trial and site has it).

    Send `If-Match` with the ETag of your last read to refuse (412) a change made meanwhile; a
    deployment with ACCRUAL_REQUIRE_IF_MATCH refuses a PATCH without it (428).
    """
    who = caller(Role.COORDINATOR)
    with database().transaction() as session:
        application = correct_application(
            session,
            who,
            path.application_id,
            body.applicant,
            body.screening_id,
            request.headers.get("If-Match"),
            settings().require_if_match,
        )
        rescreening = application.status == ApplicationStatus.SUBMITTED and application.decision is None
        application_id = application.id
    with database().reading() as session:
        view = get_application(session, who, application_id)
        tag = etag(session.get_one(Application, application_id))
    response = jsonify(view.model_dump(mode="json"))
    response.status_code = 202 if rescreening else 200
    response.headers["ETag"] = tag
    return response


@blueprint.get("", responses={200: ApplicationPage, 400: ProblemOut, 401: ProblemOut})
def listing(query: ApplicationQuery) -> Response:
    """Applications of the caller's sites (all for an admin), newest first, cursor-paginated."""
    who = caller(Role.COORDINATOR, Role.ADMIN)
    with database().reading() as session:
        page = list_applications(session, who, query, cursor_key())
    if page.items:  # the items carry decisions and criterion outcomes: clinical data, as a single read
        with database().transaction() as session:
            note_page_read(session, "application", [item.id for item in page.items])
    return jsonify(page.model_dump(mode="json"))


TRANSITION_RESPONSES = {
    200: ApplicationOut,
    401: ProblemOut,
    404: ProblemOut,
    409: ProblemOut,
    422: ProblemOut,
}


def _transition_answer(who: Caller, application_id: str) -> Response:
    with database().reading() as session:
        view = get_application(session, who, application_id)
        tag = etag(session.get_one(Application, application_id))
    response = jsonify(view.model_dump(mode="json"))
    response.headers["ETag"] = tag
    return response


@blueprint.post("/<application_id>/review", responses=TRANSITION_RESPONSES)
def review_application(path: ApplicationPath, body: ReviewApplication) -> Response:
    """An investigator's decision on a `needs_review` application: eligible or ineligible, with a reason."""
    who = caller(Role.COORDINATOR)
    with database().transaction() as session:
        review(session, who, path.application_id, body.decision, body.reason)
    return _transition_answer(who, path.application_id)


@blueprint.post("/<application_id>/enroll", responses=TRANSITION_RESPONSES)
def enroll_application(path: ApplicationPath) -> Response:
    """`eligible` -> `enrolled`; 409 when the trial or site is not recruiting or its target is reached.

    The last place closes recruitment at once (status ACTIVE_NOT_RECRUITING). An optional body
    `{"reason": "..."}` is kept in the history. A randomised trial allocates in the same transaction
    (`allocation`: the sequence number and stratum, the arm only to unblinded callers); 422 naming the
    observation while a stratification factor is unknown.
    """
    who = caller(Role.COORDINATOR)
    body = EnrollApplication.model_validate(request.get_json(silent=True) or {})
    with database().transaction() as session:
        enroll(session, who, path.application_id, body.reason)
    return _transition_answer(who, path.application_id)


@blueprint.post("/<application_id>/dlt", responses=TRANSITION_RESPONSES)
def record_dose_limiting_toxicity(path: ApplicationPath, body: DltIn) -> Response:
    """A dose-escalation participant's DLT outcome (coordinator of its site): `dlt`, `evaluable` (an
    unevaluable participant is replaced in the cohort) and `observed_on`. 409 if it was never dosed."""
    who = caller(Role.COORDINATOR)
    with database().transaction() as session:
        record_dlt(session, who, path.application_id, body)
    return _transition_answer(who, path.application_id)


@blueprint.post("/<application_id>/unblind", responses=TRANSITION_RESPONSES)
def unblind_allocation(path: ApplicationPath, body: UnblindIn) -> Response:
    """Emergency code-break (admin): reveals a randomised participant's arm, from then on to everyone
    who sees the application; the reason is audited, and `allocation.unblinded` announces it (without
    the arm). 409 if the participant was not allocated, or the code was already broken."""
    who = caller(Role.ADMIN)
    with database().transaction() as session:
        unblind(session, who, path.application_id, body.reason)
    return _transition_answer(who, path.application_id)


@blueprint.post("/<application_id>/withdraw", responses=TRANSITION_RESPONSES)
def withdraw_application(path: ApplicationPath, body: WithdrawApplication) -> Response:
    """Any open status (submitted, eligible, needs_review), or `enrolled`, -> `withdrawn`, with a coded
    reason (`code`: declined, not_reachable, consent_withdrawn, investigator_decision, other) and free
    text (`reason`, required for `other`); a `reason` alone is read as its code when it is one, else as
    `other`."""
    who = caller(Role.COORDINATOR)
    with database().transaction() as session:
        withdraw(session, who, path.application_id, body.reason, WithdrawalReason(body.reason_code))
    return _transition_answer(who, path.application_id)
