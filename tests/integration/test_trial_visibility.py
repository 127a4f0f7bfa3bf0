"""Contract v1.1, on SQLite and PostgreSQL: a caller sees the trials visible to it (all for an admin, a
sponsor's own trials, the trials of a coordinator's sites) and every other trial reads as absent, in
JSON and in FHIR, with its sites and criteria; the public summary stays public."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from models import Role
from services.tokens import create_token
from tests.support.http import assert_problem
from tests.support.registry import registry_record
from tests.support.stack import TRIAL, Stack

OWN_SPONSOR = "ALLIFE MEDICAL SCIENCE AND TECHNOLOGY CO., LTD."  # TRIAL's lead sponsor, cased otherwise
OTHER_SPONSOR = "Visibility Other Pharma"
OTHER_TRIAL = "NCT09990101"
MISSING = "NCT00000000"
READS = ("", "/sites", "/criteria", "?format=fhir")


@dataclass
class Callers:
    stack: Stack
    tokens: dict[str, str]
    other_site: str

    def get(self, who: str, path: str, **headers: str) -> Any:
        return self.stack.client.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}", **headers})

    def trial_ids(self, who: str) -> set[str]:
        response = self.get(who, "/api/v1/trials")
        assert response.status_code == 200, response.get_json()
        return {item["trial_id"] for item in response.get_json()["items"]}


@pytest.fixture
def callers(stack: Stack) -> Callers:
    """TRIAL (seeded, two sites) and another sponsor's trial, with a sponsor and a coordinator for each."""
    admin = {"Authorization": f"Bearer {stack.admin}"}
    record = registry_record()
    section = record["protocolSection"]
    section["identificationModule"]["nctId"] = OTHER_TRIAL
    section["sponsorCollaboratorsModule"]["leadSponsor"]["name"] = OTHER_SPONSOR
    section["contactsLocationsModule"]["locations"] = [{"facility": "Other hospital", "city": "Lyon"}]
    assert stack.client.post("/api/v1/trials", json=record, headers=admin).status_code == 201
    [other_site] = stack.client.get(f"/api/v1/trials/{OTHER_TRIAL}/sites", headers=admin).get_json()["items"]
    second = stack.client.post(f"/api/v1/trials/{TRIAL}/sites", json={"name": "Second site"}, headers=admin)
    assert second.status_code == 201, second.get_json()
    with stack.db.transaction() as session:
        tokens = {
            "admin": stack.admin,
            "coordinator": stack.coordinator,  # TRIAL's first site only
            "other coordinator": create_token(session, Role.COORDINATOR, [other_site["site_id"]]),
            "sponsor": create_token(session, Role.SPONSOR, sponsor=OWN_SPONSOR),
            "other sponsor": create_token(session, Role.SPONSOR, sponsor=OTHER_SPONSOR),
        }
    return Callers(stack, tokens, other_site["site_id"])


def test_each_role_lists_only_the_trials_it_sees(callers: Callers) -> None:
    everything = callers.trial_ids("admin")
    assert {TRIAL, OTHER_TRIAL, "NCT03239535", "NL003-CLI-III-2"} <= everything
    assert callers.trial_ids("sponsor") == {TRIAL}
    assert callers.trial_ids("other sponsor") == {OTHER_TRIAL}
    assert callers.trial_ids("coordinator") == {TRIAL}
    assert callers.trial_ids("other coordinator") == {OTHER_TRIAL}


@pytest.mark.parametrize("who", ["other sponsor", "other coordinator"])
@pytest.mark.parametrize("read", READS)
def test_a_trial_the_caller_does_not_see_reads_as_absent(callers: Callers, who: str, read: str) -> None:
    hidden = callers.get(who, f"/api/v1/trials/{TRIAL}{read}")
    absent = callers.get(who, f"/api/v1/trials/{MISSING}{read}")
    assert_problem(hidden, 404)
    assert_problem(absent, 404)
    assert hidden.get_json()["detail"].replace(TRIAL, "<id>") == absent.get_json()["detail"].replace(
        MISSING, "<id>"
    )
    body = hidden.get_data(as_text=True)
    assert "Allife" not in body and "Beijing" not in body and "Second site" not in body


def test_the_fhir_form_negotiated_by_accept_is_guarded_alike(callers: Callers) -> None:
    fhir = {"Accept": "application/fhir+json"}
    assert_problem(callers.get("other sponsor", f"/api/v1/trials/{TRIAL}", **fhir), 404)
    own = callers.get("sponsor", f"/api/v1/trials/{TRIAL}", **fhir)
    assert own.status_code == 200 and own.get_json()["resourceType"] == "ResearchStudy"


@pytest.mark.parametrize("who", ["admin", "sponsor", "coordinator"])
def test_whoever_sees_a_trial_reads_it_with_all_its_sites_and_its_criteria(
    callers: Callers, who: str
) -> None:
    trial = callers.get(who, f"/api/v1/trials/{TRIAL.lower()}")
    assert trial.status_code == 200 and trial.get_json()["trial_id"] == TRIAL
    sites = callers.get(who, f"/api/v1/trials/{TRIAL}/sites").get_json()["items"]
    # A coordinator sees every site of its trial, not only its own: the contract's "any role that sees
    # the trial", as the public summary lists every site's city.
    assert len(sites) == 2 and {s["trial_id"] for s in sites} == {TRIAL}
    assert callers.get(who, f"/api/v1/trials/{TRIAL}/criteria").get_json()["version"] == 1
    assert callers.get(who, f"/api/v1/trials/{TRIAL}?format=fhir").get_json()["id"] == TRIAL


def test_the_public_summary_stays_public(callers: Callers) -> None:
    for trial_id in (TRIAL, OTHER_TRIAL):
        response = callers.stack.client.get(f"/api/v1/public/trials/{trial_id}")
        assert response.status_code == 200 and response.get_json()["trial_id"] == trial_id
