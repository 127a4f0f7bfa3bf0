"""/api/v1/trials: trials (read, imported from the registry, changed), their sites, criteria versions
and the recruitment report."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel
from sqlalchemy import select

from models import Role, Site
from services.api.context import caller, database, settings, wants_fhir
from services.eligibility.document import CriteriaDocument
from services.problems import invalid
from services.randomisation.schemes import configure as configure_randomisation
from services.randomisation.schemes import scheme_row, scheme_view
from services.reporting.report import recruitment_report, visible_report_trial
from services.reporting.small_cells import answer_threshold, suppress_preview, suppress_sites
from services.schemas.api import (
    CriteriaOut,
    CriteriaPreview,
    DoseDecisionIn,
    DoseEscalationIn,
    DoseEscalationOut,
    FormatQuery,
    NewSite,
    ProblemOut,
    RecruitmentReport,
    SiteChanges,
    SiteList,
    SiteOut,
    SitePath,
    StudyRecord,
    TrialChanges,
    TrialList,
    TrialOut,
    TrialPath,
)
from services.schemas.fhir import FHIR_JSON, research_study
from services.schemas.randomisation import RandomisationIn, RandomisationOut
from services.tokens import Caller
from services.trials.admin import add_site, change_site, change_trial
from services.trials.criteria import amend_criteria
from services.trials.dose_escalation import configure, decide, escalation_view
from services.trials.preview import preview_amendment
from services.trials.queries import (
    find_trial,
    get_criteria,
    get_trial,
    list_sites,
    list_trials,
    registry_id,
    visible_trial,
)
from services.trials.registry_import import import_record

tag = Tag(name="trials", description="Trials as registered, with their sites and criteria")
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
blueprint = APIBlueprint(
    "trials", __name__, url_prefix="/api/v1/trials", abp_tags=[tag], abp_security=SECURITY
)


@blueprint.get("", responses={200: TrialList, 401: ProblemOut})
def index() -> Response:
    """Trials the caller sees (admin: all; sponsor: its own; coordinator: its sites'), with counts."""
    who = caller()
    with database().reading() as session:
        return jsonify(TrialList(items=list_trials(session, who)).model_dump(mode="json"))


@blueprint.post(
    "",
    responses={
        200: TrialOut,
        201: TrialOut,
        401: ProblemOut,
        403: ProblemOut,
        409: ProblemOut,
        422: ProblemOut,
    },
)
def create(body: StudyRecord) -> Response:
    """Create or replace a trial from a ClinicalTrials.gov API v2 study record; sites from its locations.

    Criteria are not machine-readable in the registry: attach them with PUT .../criteria; until then
    the trial accepts no application, whatever its registry status.
    """
    who = caller(Role.ADMIN)
    with database().transaction() as session:
        trial, created = import_record(session, request.get_json())
        trial_id = trial.trial_id
    with database().reading() as session:
        response = jsonify(get_trial(session, who, trial_id).model_dump(mode="json"))
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/api/v1/trials/{trial_id}"
    return response


@blueprint.get("/<trial_id>", responses={200: TrialOut, 401: ProblemOut, 404: ProblemOut})
def read(path: TrialPath, query: FormatQuery) -> Response:
    """One trial the caller sees, by NCT number or sponsor protocol id (case-insensitive).

    Also as a FHIR R4B ResearchStudy. A trial the caller does not see answers 404, as if absent.
    """
    who = caller()
    with database().reading() as session:
        if wants_fhir(query.format):
            trial = visible_trial(session, who, path.trial_id)
            sites = list(
                session.scalars(select(Site).where(Site.trial_id == trial.trial_id).order_by(Site.name))
            )
            response = jsonify(research_study(trial, sites))
            response.mimetype = FHIR_JSON
            return response
        return jsonify(get_trial(session, who, path.trial_id).model_dump(mode="json"))


@blueprint.get("/<trial_id>/sites", responses={200: SiteList, 401: ProblemOut, 404: ProblemOut})
def sites(path: TrialPath) -> Response:
    """Every site of a trial the caller sees, with status, optional target and counts."""
    who = caller()
    threshold = answer_threshold(who, settings().small_cell_threshold, database())
    with database().reading() as session:
        items = suppress_sites(list_sites(session, who, path.trial_id), threshold)
    return jsonify(SiteList(items=items).model_dump(mode="json"))


@blueprint.get("/<trial_id>/criteria", responses={200: CriteriaOut, 401: ProblemOut, 404: ProblemOut})
def criteria(path: TrialPath) -> Response:
    """The current criteria version of a trial the caller sees: each criterion's text, rule and reading."""
    who = caller()
    with database().reading() as session:
        return jsonify(get_criteria(session, who, path.trial_id).model_dump(mode="json"))


@blueprint.put(
    "/<trial_id>/criteria",
    responses={200: CriteriaOut, 201: CriteriaOut, 401: ProblemOut, 403: ProblemOut, 422: ProblemOut},
)
def amend(path: TrialPath, body: CriteriaDocument) -> Response:
    """A new criteria version (the old ones stay); open applications are screened again asynchronously.

    Sending the current criteria again changes nothing and answers 200.
    """
    who = caller(Role.ADMIN)
    if registry_id(body.trial_id) != registry_id(path.trial_id):
        raise invalid("trial_id", f"the document is for {body.trial_id}, not {path.trial_id}")
    with database().transaction() as session:
        trial = find_trial(session, path.trial_id)
        amendment = amend_criteria(session, trial, request.get_json(), who.token_id)
    with database().reading() as session:
        response = jsonify(get_criteria(session, who, path.trial_id).model_dump(mode="json"))
    response.status_code = 201 if amendment.created else 200
    return response


@blueprint.post(
    "/<trial_id>/criteria/preview",
    responses={200: CriteriaPreview, 401: ProblemOut, 403: ProblemOut, 404: ProblemOut, 422: ProblemOut},
)
def preview(path: TrialPath, body: CriteriaDocument) -> Response:
    """How a draft criteria set (the body PUT .../criteria takes) would move every decision of the trial:
    each application it ever screened evaluated under the current version and under the draft. Counts
    per decision, per site and per criterion, the applications that would change, and the forecast
    before and after. Nothing is stored and no event is written (admin, or the trial's sponsor)."""
    who = caller(Role.ADMIN, Role.SPONSOR)
    if registry_id(body.trial_id) != registry_id(path.trial_id):
        raise invalid("trial_id", f"the document is for {body.trial_id}, not {path.trial_id}")
    with database().reading() as session:
        trial = visible_report_trial(session, who, path.trial_id)
        answer = preview_amendment(session, trial, request.get_json())
    threshold = answer_threshold(who, settings().small_cell_threshold, database())
    return jsonify(suppress_preview(answer, threshold).model_dump(mode="json"))


DOSE_RESPONSES = {
    200: DoseEscalationOut,
    401: ProblemOut,
    403: ProblemOut,
    404: ProblemOut,
    409: ProblemOut,
    422: ProblemOut,
}


@blueprint.put("/<trial_id>/dose-escalation", responses=DOSE_RESPONSES)
def set_dose_escalation(path: TrialPath, body: DoseEscalationIn) -> Response:
    """A 3+3 design (admin): dose levels, cohort size, expansion, DLT window. Enrolment then goes only
    into the open level while its cohort has a place. Refused (409) once a participant was dosed."""
    caller(Role.ADMIN)
    with database().transaction() as session:
        configure(session, find_trial(session, path.trial_id), body)
    with database().reading() as session:
        return jsonify(escalation_view(session, registry_id(path.trial_id)).model_dump(mode="json"))


@blueprint.get("/<trial_id>/dose-escalation", responses=DOSE_RESPONSES)
def dose_escalation(path: TrialPath) -> Response:
    """Each level's enrolled, evaluable and DLT counts and state, the open level, the 3+3 table's
    recommendation and the MTD once named (anyone who sees the trial)."""
    who = caller()
    with database().reading() as session:
        trial = visible_trial(session, who, path.trial_id)
        return jsonify(escalation_view(session, trial.trial_id).model_dump(mode="json"))


@blueprint.post("/<trial_id>/dose-escalation/decisions", responses=DOSE_RESPONSES)
def confirm_dose_decision(path: TrialPath, body: DoseDecisionIn) -> Response:
    """The safety review confirms the recommendation (admin), with its reason: audited, and
    `dose_escalation.decided`; the next level opens only then. 409 if the table recommends otherwise."""
    who = caller(Role.ADMIN)
    with database().transaction() as session:
        decide(session, who, find_trial(session, path.trial_id).trial_id, body)
    with database().reading() as session:
        return jsonify(escalation_view(session, registry_id(path.trial_id)).model_dump(mode="json"))


RANDOMISATION_RESPONSES = {**DOSE_RESPONSES, 200: RandomisationOut}


@blueprint.put("/<trial_id>/randomisation", responses=RANDOMISATION_RESPONSES)
def set_randomisation(path: TrialPath, body: RandomisationIn) -> Response:
    """A randomisation scheme (admin): permuted blocks (strata, block sizes, or an uploaded list) or
    minimisation (factors, probability). Answers it with its `commitment`, which fixes the list or the
    seed: keep it. Enrolment then allocates. Refused (409) once anyone was allocated under it."""
    who = caller(Role.ADMIN)
    with database().transaction() as session:
        row = configure_randomisation(session, who.token_id, find_trial(session, path.trial_id), body)
        answer = scheme_view(row)
    return jsonify(answer.model_dump(mode="json"))


@blueprint.get("/<trial_id>/randomisation", responses=RANDOMISATION_RESPONSES)
def randomisation(path: TrialPath) -> Response:
    """The trial's scheme, its commitment and how many were allocated; never the seed or list (admins
    and the trial's sponsor)."""
    who = caller(Role.ADMIN, Role.SPONSOR)
    with database().reading() as session:
        trial = visible_report_trial(session, who, path.trial_id)
        return jsonify(scheme_view(scheme_row(session, trial.trial_id)).model_dump(mode="json"))


ADMIN_RESPONSES = {401: ProblemOut, 403: ProblemOut, 404: ProblemOut, 409: ProblemOut, 422: ProblemOut}


@blueprint.patch("/<trial_id>", responses={200: TrialOut, **ADMIN_RESPONSES})
def change(path: TrialPath, body: TrialChanges) -> Response:
    """Change `overall_status` and/or `enrollment_target`; raising a reached target re-opens recruitment."""
    who = caller(Role.ADMIN)
    with database().transaction() as session:
        change_trial(session, path.trial_id, sent(body), who.token_id)
    with database().reading() as session:
        return jsonify(get_trial(session, who, path.trial_id).model_dump(mode="json"))


@blueprint.post("/<trial_id>/sites", responses={201: SiteOut, **ADMIN_RESPONSES})
def create_site(path: TrialPath, body: NewSite) -> Response:
    """Add a site to the trial, with its status and optional enrolment target."""
    who = caller(Role.ADMIN)
    with database().transaction() as session:
        site_id = add_site(session, path.trial_id, body.model_dump(), who.token_id).site_id
    return _site_answer(who, path.trial_id, site_id, 201)


@blueprint.patch("/<trial_id>/sites/<site_id>", responses={200: SiteOut, **ADMIN_RESPONSES})
def change_one_site(path: SitePath, body: SiteChanges) -> Response:
    """Change a site's `status` and/or `enrollment_target`."""
    who = caller(Role.ADMIN)
    with database().transaction() as session:
        change_site(session, path.trial_id, path.site_id, sent(body), who.token_id)
    return _site_answer(who, path.trial_id, path.site_id, 200)


def sent(body: BaseModel) -> dict[str, Any]:
    """Only the fields the client sent: absent means unchanged, null means none (e.g. no target)."""
    return {name: getattr(body, name) for name in body.model_fields_set}


def _site_answer(who: Caller, trial_id: str, site_id: str, status: int) -> Response:
    with database().reading() as session:
        site = next(s for s in list_sites(session, who, trial_id) if s.site_id == site_id)
    response = jsonify(site.model_dump(mode="json"))
    response.status_code = status
    response.headers["Location"] = f"/api/v1/trials/{site.trial_id}/sites/{site_id}"
    return response


@blueprint.get(
    "/<trial_id>/recruitment", responses={200: RecruitmentReport, 401: ProblemOut, 404: ProblemOut}
)
def recruitment(path: TrialPath) -> Response:
    """The recruitment report: counts by status, per site, screen failures, weekly series, forecast.

    For the trial's sponsor and admins; counts only, never application-level data.
    """
    who = caller(Role.SPONSOR, Role.ADMIN)
    threshold = answer_threshold(who, settings().small_cell_threshold, database())
    with database().reading() as session:
        return jsonify(recruitment_report(session, who, path.trial_id, threshold).model_dump(mode="json"))
