"""The sponsors' dashboard: the recruitment report as server-rendered pages with SVG charts.

Authenticated like the API (Authorization: Bearer), or by signing in once with a token: the signed
session cookie names the token and its session generation, both checked again on every request (see
services.api.context); signing out moves the generation on, ending the token's sessions on the server.
A session also ends once unused for ACCRUAL_SESSION_IDLE_MINUTES, or ACCRUAL_SESSION_HOURS after sign-in.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Blueprint, Flask, Response, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from config import Settings
from models import Role
from services.api.context import (
    GENERATION_KEY,
    SESSION_KEY,
    caller,
    database,
    settings,
    signed_in_caller,
    stamp_sign_in,
)
from services.api.rate_limits import count_failed_authentication
from services.audit import acting_as
from services.dashboard import charts, exports
from services.errors import DomainError
from services.problems import Problem, problem_for
from services.reporting.overview import coordinator_overview, trial_rows
from services.reporting.report import recruitment_report, visible_report_trial
from services.reporting.small_cells import answer_threshold
from services.tokens import end_sessions, start_session

blueprint = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# No script runs on these pages; the policy says so, and forbids framing and foreign resources.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer the browser sends "Origin: null" on our own forms.
    "Referrer-Policy": "same-origin",
}


def configure_sessions(app: Flask, settings: Settings) -> None:
    """Signed, HttpOnly, SameSite=Strict session cookies for the dashboard, with a key of their own."""
    app.secret_key = hmac.new(settings.signing_key(), b"accrual dashboard session", sha256).hexdigest()
    app.config.update(
        SESSION_COOKIE_NAME="accrual_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        SESSION_COOKIE_PATH="/dashboard",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
    )


@blueprint.app_template_filter("cell")
def _cell(count: int | None) -> str:
    """A count as the page shows it: withheld ones (small cells) say so, never "None"."""
    return charts.WITHHELD if count is None else str(count)


@blueprint.after_request
def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if not request.path.startswith("/dashboard/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.errorhandler(DomainError)
def _refusal_page(error: DomainError) -> BaseResponse | tuple[str, int, dict[str, str]]:
    return _problem_page(problem_for(error))


@blueprint.errorhandler(Problem)
def _problem_page(problem: Problem) -> BaseResponse | tuple[str, int, dict[str, str]]:
    if problem.status == 401 and request.method == "GET" and "Authorization" not in request.headers:
        return redirect(url_for("dashboard.sign_in", next=request.full_path.rstrip("?")), code=303)
    page = render_template("dashboard/error.html", status=problem.status, detail=problem.detail)
    return page, problem.status, problem.headers


@blueprint.errorhandler(HTTPException)
def _http_error_page(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    return render_template("dashboard/error.html", status=status, detail=error.description), status


def _same_origin() -> bool:
    """A state-changing form must come from this site: the browser's Origin (or Referer) says so."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return True  # not a browser's cross-site form: browsers send Origin on every cross-site POST
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.netloc}" == request.host_url.rstrip("/")


def _local_next(target: str | None) -> str:
    """Only a dashboard path of this site, so that the sign-in page cannot redirect anywhere else; it
    goes into a Location header, so it holds no control character or white space either."""
    if not target or not target.startswith("/dashboard/") or "\\" in target:
        return url_for("dashboard.index")
    if any(char.isspace() or not char.isprintable() for char in target):
        return url_for("dashboard.index")  # CR/LF would split the header; Werkzeug refuses with a 500
    # Browsers resolve dot segments, encoded or not: /dashboard/../api would leave the dashboard.
    path = unquote(urlsplit(target).path)
    if "//" in path or ".." in path.split("/"):
        return url_for("dashboard.index")
    return target


@blueprint.route("/login", methods=["GET", "POST"])
def sign_in() -> Any:
    next_path = _local_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("dashboard/login.html", next=next_path, error=None)
    if not _same_origin():
        raise Problem(403, "forbidden", "the sign-in form was sent from another site")
    token = request.form.get("token", "").strip()
    with database().reading() as db_session:
        started = start_session(db_session, token) if token else None
    if started is None:
        if token:  # an empty form guesses nothing
            count_failed_authentication()  # 429 instead, once this address has failed too often
        error = "That token is unknown, revoked or mistyped."
        return render_template("dashboard/login.html", next=next_path, error=error), 401
    found, generation = started
    session.clear()
    session.permanent = True
    session[SESSION_KEY] = found.token_id
    session[GENERATION_KEY] = generation
    stamp_sign_in()
    return redirect(next_path, code=303)


@blueprint.post("/logout")
def sign_out() -> BaseResponse:
    if not _same_origin():
        raise Problem(403, "forbidden", "the sign-out form was sent from another site")
    found = signed_in_caller()
    if found is not None:  # a session that has already ended has nothing left to end
        with acting_as(found.token_id, found.role.value), database().transaction() as db_session:
            end_sessions(db_session, found.token_id, session[GENERATION_KEY])
    session.clear()
    return redirect(url_for("dashboard.sign_in"), code=303)


@blueprint.get("/")
def index() -> str:
    """Sponsors and admins: their trials side by side. Coordinators: their own sites, what waits for
    them and their latest decisions."""
    who = caller(Role.SPONSOR, Role.ADMIN, Role.COORDINATOR)
    signed_in = SESSION_KEY in session
    with database().reading() as db_session:
        if who.role is Role.COORDINATOR:
            overview = coordinator_overview(db_session, who)
            return render_template("dashboard/coordinator.html", overview=overview, signed_in=signed_in)
        rows = trial_rows(db_session, who)
    return render_template("dashboard/index.html", trials=rows, signed_in=signed_in)


@blueprint.get("/trials/<trial_id>")
def trial_page(trial_id: str) -> str:
    who = caller(Role.SPONSOR, Role.ADMIN)
    threshold = answer_threshold(who, settings().small_cell_threshold, database())
    with database().reading() as db_session:
        report = recruitment_report(db_session, who, trial_id, threshold)
        trial = visible_report_trial(db_session, who, trial_id)
        title, sponsor = trial.title, trial.sponsor
    today = datetime.now(UTC).date()
    enrolled = report.counts.get("enrolled") or 0  # trial-level: never withheld
    withheld = charts.projection_withheld(report.weekly, enrolled, report.enrollment_target, today)
    drawn = report.forecast
    if withheld is not None:  # too few data: no date, no band, however confident the model would be
        drawn = drawn.model_copy(update={"projected_target_date": None, "interval_80": None})
    return render_template(
        "dashboard/trial.html",
        report=report,
        title=title,
        sponsor=sponsor,
        enrolled=enrolled,
        today=today,
        forecast=drawn,
        withheld=withheld,
        weekly=charts.weekly_chart(report.weekly, today),
        projection=charts.forecast_chart(report.weekly, enrolled, report.enrollment_target, drawn, today),
        funnel=charts.funnel(report.counts, report.applied_count),
        failures=charts.failure_bars(report.screen_failures),
        consort=(boxes := charts.consort_diagram(report.consort)),
        consort_height=charts.consort_height(boxes),
        signed_in=SESSION_KEY in session,
    )


@blueprint.get("/trials/<trial_id>/<table>.csv")
def report_table(trial_id: str, table: str) -> Response:
    """One table of the trial's report as CSV, for a spreadsheet or a monthly report."""
    who = caller(Role.SPONSOR, Role.ADMIN)
    if table not in exports.TABLES:
        raise Problem(404, "not-found", f"no table {table}: {', '.join(exports.TABLES)}")
    threshold = answer_threshold(who, settings().small_cell_threshold, database())
    with database().reading() as db_session:
        report = recruitment_report(db_session, who, trial_id, threshold)
    response = Response(exports.csv_of(report, table), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{report.trial_id}-{table}.csv"'
    return response
