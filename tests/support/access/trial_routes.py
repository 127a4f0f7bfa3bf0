"""The trial routes of the access matrix: trials, their criteria, report and sites."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from models import DoseEscalation, Site, Trial
from services.schemas.api import DoseEscalationIn
from services.trials.criteria import bundled_document
from services.trials.dose_escalation import configure
from tests.support.access.routes import (
    ADMIN_ONLY,
    ANY_ROLE,
    SPONSORS_TRIAL,
    TRIAL_READ,
    Params,
    Route,
)
from tests.support.access.world import (
    ADMIN,
    SPONSOR_OUT,
    World,
    assert_names_no_applicant,
    item_ids,
    study_record,
)
from tests.support.criteria import amended
from tests.support.stack import TRIAL


def _trial_target(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        trial = session.get_one(Trial, TRIAL)
        return trial.enrollment_target, trial.overall_status


def _trial_exists(world: World, params: Params) -> bool:
    with world.stack.db.sessions() as session:
        return session.get(Trial, params["new_trial"]) is not None


def _criteria_version(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        return session.get_one(Trial, TRIAL).current_criteria_version


def _sites_named(world: World, params: Params) -> int:
    with world.stack.db.sessions() as session:
        return int(
            session.scalar(select(func.count()).select_from(Site).where(Site.name == params["site_name"]))
            or 0
        )


def _site_a_status(world: World, params: Params) -> Any:
    with world.stack.db.sessions() as session:
        site = session.get_one(Site, world.site_a)
        return site.status, site.enrollment_target


def _check_report(world: World, role: str, response: Any, params: Params) -> None:
    body = response.get_json()
    assert body["trial_id"] == TRIAL and body["applied_count"] >= 3 and body["counts"]["enrolled"] >= 1
    assert_names_no_applicant(world, response, application_ids_too=True)  # counts only


def _check_trial_list(world: World, role: str, response: Any, params: Params) -> None:
    trials = item_ids(response, "trial_id")
    if role == ADMIN:
        assert {TRIAL, "NCT03239535", "NL003-CLI-III-2"} <= trials
    elif role == SPONSOR_OUT:
        assert trials == set()  # another sponsor's trials are not listed, nor their counts
    else:
        assert trials == {TRIAL}  # its own sponsor's trial; the trial of a coordinator's site


def _check_sites(world: World, role: str, response: Any, params: Params) -> None:
    assert {world.site_a, world.site_b} <= item_ids(response, "site_id")


def _check_trial(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["trial_id"] == TRIAL


def _check_trial_created(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["trial_id"] == params["new_trial"]
    assert response.headers["Location"] == f"/api/v1/trials/{params['new_trial']}"


def _check_trial_target(world: World, role: str, response: Any, params: Params) -> None:
    assert _trial_target(world, params) == (27, "RECRUITING")


def _check_criteria(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["version"] == 1


def _check_same_criteria(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["version"] == 1 and _criteria_version(world, params) == 1


def _check_site_created(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["name"] == params["site_name"] and _sites_named(world, params) == 1


def _check_site_a(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["site_id"] == world.site_a
    assert _site_a_status(world, params)[0] == "RECRUITING"


def _check_vocabulary(world: World, role: str, response: Any, params: Params) -> None:
    assert any(v["name"] == "hemoglobin_g_l" for v in response.get_json()["variables"])


DOSE_TRIAL = "ADMSCC-CLI-P1-2A"  # ships with a design; the matrix's trial keeps enrolling freely
DESIGN = {
    "levels": [{"level": 1, "dose": "1e6 cells"}],
    "cohort_size": 20,
    "max_per_level": 40,
    "dlt_window_days": 28,
}


def _with_design(world: World) -> Params:
    """The matrix's trial with a design whose cohort (20) its few enrolments never fill."""
    with world.stack.db.transaction() as session:
        if session.get(DoseEscalation, TRIAL) is None:
            configure(session, session.get_one(Trial, TRIAL), DoseEscalationIn.model_validate(DESIGN))
    return {}


SCHEME = {
    "method": "permuted_blocks",
    "arms": [{"arm_id": "cells"}, {"arm_id": "saline"}],
    "strata": ["site"],
    "block_sizes": [2, 4],
}


def _check_scheme(world: World, role: str, response: Any, params: Params) -> None:
    scheme = response.get_json()
    assert scheme["commitment"].startswith("sha256:") and "seed" not in scheme and "list" not in scheme


def _check_escalation(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["open_level"] == 1


def _check_preview(world: World, role: str, response: Any, params: Params) -> None:
    assert response.get_json()["current_version"] == _criteria_version(world, params)


TRIAL_ROUTES = [
    Route("GET", "/api/v1/trials", ANY_ROLE, check=_check_trial_list),
    Route("GET", "/api/v1/vocabulary", ANY_ROLE, check=_check_vocabulary),
    Route(
        "POST",
        "/api/v1/trials",
        ADMIN_ONLY,
        statuses=(201,),
        prepare=lambda w: {"new_trial": f"NCT0999{w.next():04d}"},
        body=lambda w, role, p: study_record(p["new_trial"]),
        snapshot=_trial_exists,
        check=_check_trial_created,
    ),
    Route(
        "GET",
        "/api/v1/trials/<trial_id>",
        TRIAL_READ,
        check=_check_trial,
        hides_like_missing=True,
    ),
    Route(
        "PATCH",
        "/api/v1/trials/<trial_id>",
        ADMIN_ONLY,
        # The admin confirms the target; anyone else tries to lower it, which must change nothing.
        body=lambda w, role, p: {"enrollment_target": 27 if role == ADMIN else 5},
        snapshot=_trial_target,
        check=_check_trial_target,
    ),
    Route(
        "GET",
        "/api/v1/trials/<trial_id>/criteria",
        TRIAL_READ,
        check=_check_criteria,
        hides_like_missing=True,
    ),
    Route(
        "PUT",
        "/api/v1/trials/<trial_id>/criteria",
        ADMIN_ONLY,
        # The admin sends the current criteria again (no new version); anyone else an amendment.
        body=lambda w, role, p: bundled_document("NCT06359912.criteria.yaml") if role == ADMIN else amended(),
        snapshot=_criteria_version,
        check=_check_same_criteria,
    ),
    Route(
        "GET",
        "/api/v1/trials/<trial_id>/recruitment",
        SPONSORS_TRIAL,
        check=_check_report,
        hides_like_missing=True,
    ),
    Route(
        "GET",
        "/api/v1/trials/<trial_id>/dose-escalation",
        TRIAL_READ,
        prepare=_with_design,
        check=_check_escalation,
    ),
    Route(
        "PUT",
        "/api/v1/trials/<trial_id>/dose-escalation",
        ADMIN_ONLY,
        prepare=lambda w: {"trial_id": DOSE_TRIAL},
        body=lambda w, role, p: bundled_document(f"{DOSE_TRIAL}.dose-escalation.yaml"),
        check=_check_escalation,
    ),
    Route(
        "POST",
        "/api/v1/trials/<trial_id>/dose-escalation/decisions",
        ADMIN_ONLY,
        statuses=(409,),  # allowed, and refused by the table: nobody dosed, nothing to decide
        prepare=lambda w: {"trial_id": DOSE_TRIAL},
        body=lambda w, role, p: {"action": "escalate", "reason": "matrix"},
    ),
    Route(
        "GET",
        "/api/v1/trials/<trial_id>/randomisation",
        SPONSORS_TRIAL,
        check=_check_scheme,
        hides_like_missing=True,
    ),
    Route(
        "PUT",
        "/api/v1/trials/<trial_id>/randomisation",
        ADMIN_ONLY,
        prepare=lambda w: {"trial_id": DOSE_TRIAL},  # nobody is enrolled there: its scheme may change
        body=lambda w, role, p: SCHEME,
        check=_check_scheme,
    ),
    Route(
        "POST",
        "/api/v1/trials/<trial_id>/criteria/preview",
        SPONSORS_TRIAL,
        body=lambda w, role, p: amended(),
        snapshot=_criteria_version,  # nothing stored: the version stays
        check=_check_preview,
    ),
    Route("GET", "/api/v1/trials/<trial_id>/sites", TRIAL_READ, check=_check_sites, hides_like_missing=True),
    Route(
        "POST",
        "/api/v1/trials/<trial_id>/sites",
        ADMIN_ONLY,
        statuses=(201,),
        prepare=lambda w: {"site_name": f"Matrix site {w.next():04d}"},
        body=lambda w, role, p: {"name": p["site_name"], "city": "Tianjin"},
        snapshot=_sites_named,
        check=_check_site_created,
    ),
    Route(
        "PATCH",
        "/api/v1/trials/<trial_id>/sites/<site_id>",
        ADMIN_ONLY,
        body=lambda w, role, p: {"status": "RECRUITING"} if role == ADMIN else {"status": "SUSPENDED"},
        snapshot=_site_a_status,
        check=_check_site_a,
    ),
]
