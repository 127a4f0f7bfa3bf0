"""Registry import, prescreening and FHIR views, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from models import Application, Event, Site, Trial
from services.applications.screening import screen_application
from services.schemas.fhir import STUDY_STATUS, SUBJECT_STATUS
from tests.support.applicants import eligible_applicant
from tests.support.database import stored
from tests.support.http import assert_problem
from tests.support.registry import new_study, registry_record
from tests.support.stack import TRIAL, Stack


def post_trial(stack: Stack, body: Any, token: str | None = None) -> Any:
    return stack.client.post(
        "/api/v1/trials", json=body, headers={"Authorization": f"Bearer {token or stack.admin}"}
    )


def trial_count(stack: Stack) -> tuple[int, int]:
    with stack.db.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Trial)) or 0,
            session.scalar(select(func.count()).select_from(Site)) or 0,
        )


def test_a_registry_record_creates_the_trial_and_its_sites(stack: Stack) -> None:
    response = post_trial(stack, new_study())
    assert response.status_code == 201 and response.headers["Location"] == "/api/v1/trials/NCT09999999"
    trial = response.get_json()
    assert (trial["title"], trial["enrollment_target"], trial["phases"]) == (
        "A new CLI trial",
        27,
        ["PHASE1"],
    )
    assert (trial["minimum_age"], trial["criteria_version"]) == ("18 Years", None)
    sites = stack.client.get(
        "/api/v1/trials/nct09999999/sites", headers={"Authorization": f"Bearer {stack.admin}"}
    )
    assert [(s["city"], s["status"]) for s in sites.get_json()["items"]] == [
        ("Seoul", "RECRUITING"),
        ("Busan", "NOT_YET_RECRUITING"),
    ]


def test_importing_the_same_record_again_replaces_fields_and_adds_no_site(stack: Stack) -> None:
    post_trial(stack, new_study())
    before = trial_count(stack)
    study = new_study()
    study["protocolSection"]["statusModule"]["overallStatus"] = "SUSPENDED"
    response = post_trial(stack, study)
    assert response.status_code == 200 and response.get_json()["overall_status"] == "SUSPENDED"
    assert trial_count(stack) == before
    with stack.db.sessions() as session:
        event = session.scalars(select(Event).where(Event.type == "trial.status_changed")).one()
    assert event.data == {"from": "RECRUITING", "to": "SUSPENDED", "source": "registry"}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s.pop("protocolSection"), "protocolSection"),
        (
            lambda s: s["protocolSection"]["identificationModule"].pop("briefTitle"),
            "protocolSection.identificationModule.briefTitle",
        ),
        (
            lambda s: s["protocolSection"]["statusModule"].update(overallStatus="OPEN"),
            "protocolSection.statusModule.overallStatus",
        ),
        (
            lambda s: s["protocolSection"]["sponsorCollaboratorsModule"].pop("leadSponsor"),
            "protocolSection.sponsorCollaboratorsModule.leadSponsor.name",
        ),
        (
            lambda s: s["protocolSection"]["designModule"]["enrollmentInfo"].update(count=-1),
            "protocolSection.designModule.enrollmentInfo.count",
        ),
        (
            lambda s: s["protocolSection"]["contactsLocationsModule"]["locations"][1].pop("facility"),
            "protocolSection.contactsLocationsModule.locations.1.facility",
        ),
        (
            lambda s: s["protocolSection"]["statusModule"].update(overallStatus=["RECRUITING"]),
            "protocolSection.statusModule.overallStatus",
        ),
        (
            lambda s: s["protocolSection"]["sponsorCollaboratorsModule"].update(leadSponsor="Acme"),
            "protocolSection.sponsorCollaboratorsModule.leadSponsor",
        ),
        (
            lambda s: s["protocolSection"]["conditionsModule"].update(conditions="CLI"),
            "protocolSection.conditionsModule.conditions",
        ),
    ],
)
def test_an_incomplete_record_is_422_naming_the_field_and_nothing_is_imported(
    stack: Stack, mutate: Any, field: str
) -> None:
    study = new_study()
    mutate(study)
    before = trial_count(stack)
    assert_problem(post_trial(stack, study), 422, field)
    assert trial_count(stack) == before


def test_only_an_admin_imports_trials(stack: Stack) -> None:
    assert_problem(post_trial(stack, new_study(), token=stack.coordinator), 403)


def prescreen(stack: Stack, applicant: dict[str, Any], trial_ids: list[str] | None = None) -> Any:
    body: dict[str, Any] = {"applicant": applicant}
    if trial_ids is not None:
        body["trial_ids"] = trial_ids
    return stack.client.post(
        "/api/v1/prescreen", json=body, headers={"Authorization": f"Bearer {stack.coordinator}"}
    )


def test_prescreening_decides_against_recruiting_trials_and_stores_nothing(stack: Stack) -> None:
    applicant = eligible_applicant()
    del applicant["screening_id"]
    response = prescreen(stack, applicant)
    assert response.status_code == 200
    results = response.get_json()["results"]
    assert [(r["trial_id"], r["decision"]) for r in results] == [(TRIAL, "eligible")]
    assert len(results[0]["criteria"]) == 25 and results[0]["deciding"] == []
    assert stored(stack) == (0, 0, 0)


def test_prescreening_names_what_stands_in_the_way(stack: Stack) -> None:
    applicant = eligible_applicant(wagner_grade=5)
    del applicant["screening_id"], applicant["hiv_positive"]
    results = prescreen(stack, applicant).get_json()["results"]
    assert results[0]["decision"] == "ineligible" and results[0]["deciding"] == ["I4"]
    del applicant["wagner_grade"]
    results = prescreen(stack, applicant).get_json()["results"]
    assert results[0]["decision"] == "needs_review"
    assert results[0]["missing"] == ["hiv_positive", "wagner_grade"]


def test_prescreening_listed_trials_orders_eligible_first(stack: Stack) -> None:
    applicant = eligible_applicant()
    del applicant["screening_id"]
    results = prescreen(stack, applicant, ["nct03239535", TRIAL]).get_json()["results"]
    assert [r["trial_id"] for r in results] == [TRIAL, "NCT03239535"]
    assert results[1]["overall_status"] == "UNKNOWN"


def test_prescreening_refuses_unknown_trials_and_bad_observations(stack: Stack) -> None:
    applicant = eligible_applicant()
    del applicant["screening_id"]
    assert_problem(prescreen(stack, applicant, ["NCT00000000"]), 422, "trial_ids")
    assert_problem(prescreen(stack, {**applicant, "abi": "low"}), 422, "applicant.abi")
    assert_problem(prescreen(stack, {**applicant, "name": "Jane"}), 422, "applicant.name")


def test_a_trial_reads_as_a_fhir_research_study(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.admin}"}
    response = stack.client.get(f"/api/v1/trials/{TRIAL}?format=fhir", headers=auth)
    assert response.mimetype == "application/fhir+json"
    study = response.get_json()
    assert (study["resourceType"], study["status"], study["id"]) == ("ResearchStudy", "active", TRIAL)
    assert study["identifier"][0] == {"system": "https://clinicaltrials.gov", "value": TRIAL}
    assert study["phase"]["coding"][0]["code"] == "phase-1"
    assert "Beijing" in study["site"][0]["display"]
    negotiated = stack.client.get(
        f"/api/v1/trials/{TRIAL}", headers={**auth, "Accept": "application/fhir+json"}
    )
    assert negotiated.get_json()["resourceType"] == "ResearchStudy"
    assert stack.client.get(f"/api/v1/trials/{TRIAL}", headers=auth).get_json()["trial_id"] == TRIAL


def test_an_application_reads_as_a_fhir_research_subject(stack: Stack) -> None:
    application_id = stack.submit(eligible_applicant()).get_json()["id"]
    auth = {"Authorization": f"Bearer {stack.coordinator}"}
    subject = stack.client.get(f"/api/v1/applications/{application_id}?format=fhir", headers=auth).get_json()
    assert (subject["resourceType"], subject["status"]) == ("ResearchSubject", "screening")
    assert subject["study"]["reference"] == f"ResearchStudy/{TRIAL}"
    with stack.db.sessions() as session:
        event_id = str(session.scalar(select(Event.id).where(Event.application_id == application_id)))
    screen_application(stack.db, application_id, event_id, 5)
    subject = stack.client.get(f"/api/v1/applications/{application_id}?format=fhir", headers=auth).get_json()
    assert subject["status"] == "eligible"
    with stack.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Application)) == 1


def test_every_status_has_a_fhir_code() -> None:
    from models import ApplicationStatus, TrialStatus

    assert set(STUDY_STATUS) == {s.value for s in TrialStatus}
    assert set(SUBJECT_STATUS) == {s.value for s in ApplicationStatus}


SEED_RECORDS = ["NCT06359912.json", "NCT03239535.json", "NL003-CLI-III-2.json", "ADMSCC-CLI-P1-2A.json"]


@pytest.mark.parametrize("name", SEED_RECORDS)
def test_each_seed_record_round_trips_through_import(stack: Stack, name: str) -> None:
    study = registry_record(name)
    protocol = study["protocolSection"]
    response = post_trial(stack, study)  # the seed already holds it: this replaces it with itself
    assert response.status_code == 200
    trial = response.get_json()
    identification = protocol["identificationModule"]
    assert trial["trial_id"] == (identification.get("nctId") or identification["orgStudyIdInfo"]["id"])
    assert trial["title"] == identification["briefTitle"]
    assert trial["sponsor"] == protocol["sponsorCollaboratorsModule"]["leadSponsor"]["name"]
    assert trial["overall_status"] == protocol["statusModule"]["overallStatus"]
    assert trial["phases"] == protocol["designModule"]["phases"]
    assert trial["enrollment_target"] == protocol["designModule"]["enrollmentInfo"]["count"]
    assert trial["conditions"] == protocol["conditionsModule"]["conditions"]
    assert trial["criteria_version"] == 1
    with stack.db.sessions() as session:
        stored_record = session.get_one(Trial, trial["trial_id"]).registry_record
        sites = session.scalars(select(Site.name).where(Site.trial_id == trial["trial_id"])).all()
    assert stored_record == study
    assert sorted(sites) == sorted(
        loc["facility"] for loc in protocol["contactsLocationsModule"]["locations"]
    )
    fhir = stack.client.get(
        f"/api/v1/trials/{trial['trial_id']}?format=fhir", headers={"Authorization": f"Bearer {stack.admin}"}
    ).get_json()
    assert fhir["resourceType"] == "ResearchStudy" and fhir["title"] == trial["title"]
