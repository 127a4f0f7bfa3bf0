"""The intake API on SQLite and PostgreSQL: what is accepted, what is refused; refusals store nothing."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import select, text, update

from models import Application, Event, Site, Trial
from services.tokens import Role, create_token
from tests.support.applicants import eligible_applicant
from tests.support.database import stored
from tests.support.http import assert_problem
from tests.support.stack import TRIAL, Stack
from tests.support.waiting import wait_until


def test_a_valid_submission_is_accepted_with_202_location_and_one_outbox_event(stack: Stack) -> None:
    response = stack.submit(eligible_applicant())
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "submitted" and body["decision"] is None and body["trial_id"] == TRIAL
    assert response.headers["Location"] == f"/api/v1/applications/{body['id']}"
    assert body["history"][0]["status"] == "submitted"
    with stack.db.sessions() as session:
        events = session.scalars(select(Event)).all()
        application = session.get_one(Application, body["id"])
    assert [(e.type, e.application_id, e.status) for e in events] == [
        ("application.submitted", body["id"], "pending")
    ]
    assert application.observations["hemoglobin_g_l"] == 121.0
    assert "screening_id" not in application.observations


def test_events_carry_no_clinical_observations(stack: Stack) -> None:
    stack.submit(eligible_applicant(screening_id="CANARY-7731"))
    with stack.db.sessions() as session:
        payloads = [json.dumps(e.data) for e in session.scalars(select(Event))]
    assert payloads and all("CANARY" not in p and "1955" not in p for p in payloads)


def test_the_trial_id_is_case_insensitive(stack: Stack) -> None:
    response = stack.client.post(
        "/api/v1/applications",
        json={"trial_id": TRIAL.lower(), "site_id": stack.site_id, "applicant": eligible_applicant()},
        headers={"Authorization": f"Bearer {stack.coordinator}"},
    )
    assert response.status_code == 202 and response.get_json()["trial_id"] == TRIAL


BAD_FIELDS = [
    ("applicant.abi", {"abi": "low"}),
    ("applicant.abi", {"abi": 3.5}),
    ("applicant.rest_pain", {"rest_pain": "yes"}),
    ("applicant.wagner_grade", {"wagner_grade": 2.5}),
    ("applicant.rutherford_grade", {"rutherford_grade": 7}),
    ("applicant.revascularization", {"revascularization": "laser"}),
    ("applicant.consent_date", {"consent_date": "01/10/2026"}),
    ("applicant.consent_date", {"consent_date": "2999-01-01"}),
    ("applicant.hemoglobin_g_l", {"hemoglobin_g_l": {"value": 12, "unit": "mg/dL"}}),
    ("applicant.hemoglobin_g_l", {"hemoglobin_g_l": {"value": 40, "unit": "g/dL"}}),
    ("applicant.patient_name", {"patient_name": "Jane Doe"}),
    ("applicant.screening_id", {"screening_id": "has space"}),
    ("applicant.sex", {"sex": None}),
]


@pytest.mark.parametrize(
    ("field", "change"), BAD_FIELDS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_FIELDS)]
)
def test_each_bad_field_is_refused_with_422_naming_it_and_nothing_is_stored(
    stack: Stack, field: str, change: dict[str, Any]
) -> None:
    body = assert_problem(stack.submit(eligible_applicant(**change)), 422, field)
    assert "Jane Doe" not in json.dumps(body)
    assert stored(stack) == (0, 0, 0)


def test_several_bad_fields_are_all_named(stack: Stack) -> None:
    body = assert_problem(stack.submit(eligible_applicant(abi="x", wagner_grade=9)), 422)
    assert {e["field"] for e in body["errors"]} == {"applicant.abi", "applicant.wagner_grade"}
    assert {e["pointer"] for e in body["errors"]} == {"/applicant/abi", "/applicant/wagner_grade"}


def test_an_applicant_without_birth_date_or_age_is_refused(stack: Stack) -> None:
    applicant = eligible_applicant()
    del applicant["birth_date"]
    assert_problem(stack.submit(applicant), 422, "applicant.age_years")
    assert stored(stack) == (0, 0, 0)


def test_unknown_trial_is_422_naming_trial_id(stack: Stack) -> None:
    response = stack.client.post(
        "/api/v1/applications",
        json={"trial_id": "NCT00000000", "site_id": stack.site_id, "applicant": eligible_applicant()},
        headers={"Authorization": f"Bearer {stack.coordinator}"},
    )
    assert_problem(response, 422, "trial_id")
    assert stored(stack) == (0, 0, 0)


def test_unknown_site_is_422_naming_site_id(stack: Stack) -> None:
    response = stack.client.post(
        "/api/v1/applications",
        json={"trial_id": TRIAL, "site_id": "site_nope", "applicant": eligible_applicant()},
        headers={"Authorization": f"Bearer {stack.coordinator}"},
    )
    assert_problem(response, 422, "site_id")
    assert stored(stack) == (0, 0, 0)


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b'{"trial_id": "NCT06359912", ', "application/json", 400),
        (b"\x00\xff not json", "application/json", 400),
        (b"trial_id=NCT06359912", "application/x-www-form-urlencoded", 415),
        (b"[]", "application/json", 422),
        (b'"just a string"', "application/json", 422),
    ],
)
def test_malformed_bodies_get_a_problem_and_store_nothing(
    stack: Stack, raw: bytes, content_type: str, status: int
) -> None:
    response = stack.client.post(
        "/api/v1/applications",
        data=raw,
        headers={"Authorization": f"Bearer {stack.coordinator}", "Content-Type": content_type},
    )
    assert_problem(response, status)
    assert stored(stack) == (0, 0, 0)


ECHO_CANARY = "ECHO-CANARY-5521"  # in each bad value that is a string: never echoed back
BAD_APPLICANTS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", {"nonsense_field": ECHO_CANARY}, "applicant.nonsense_field"),
    ("wrong type", {"abi": f"high {ECHO_CANARY}"}, "applicant.abi"),
    ("invalid enum", {"sex": ECHO_CANARY}, "applicant.sex"),
    ("invalid date", {"birth_date": "1955-02-30"}, "applicant.birth_date"),
    ("NUL byte", {"screening_id": f"A\u0000{ECHO_CANARY}"}, "applicant.screening_id"),
    ("very long string", {"screening_id": ECHO_CANARY * 10_000}, "applicant.screening_id"),
    ("mixed Unicode digits", {"abi": "\u0660\u066b\u0665"}, "applicant.abi"),
    ("fullwidth unit", {"hemoglobin_g_l": {"value": 12.1, "unit": "g/d\uff2c"}}, "applicant.hemoglobin_g_l"),
]


def _assert_clean_problem(response: Any, status: int, field: str | None) -> None:
    """A problem+json with type, title, status and detail (naming the field with a JSON pointer), and
    neither a stack trace nor the rejected value in it."""
    problem = assert_problem(response, status, field)
    assert problem["title"] and problem["type"].startswith("/problems/")
    if field is not None:
        assert all(e["pointer"].startswith("/") for e in problem["errors"])
    text_ = response.get_data(as_text=True)
    assert "Traceback" not in text_ and 'File "' not in text_ and ECHO_CANARY not in text_


@pytest.mark.parametrize(("case", "changes", "field"), BAD_APPLICANTS, ids=[c[0] for c in BAD_APPLICANTS])
def test_s28_each_kind_of_bad_field_gets_a_clean_422_naming_it_and_stores_nothing(
    stack: Stack, case: str, changes: dict[str, Any], field: str
) -> None:
    _assert_clean_problem(stack.submit(eligible_applicant(**changes)), 422, field)
    assert stored(stack) == (0, 0, 0)


def test_s28_bad_bodies_missing_fields_wrong_types_and_media_get_clean_problems_and_store_nothing(
    stack: Stack,
) -> None:
    def send(raw: bytes, content_type: str = "application/json") -> Any:
        return stack.client.post(
            "/api/v1/applications",
            data=raw,
            headers={"Authorization": f"Bearer {stack.coordinator}", "Content-Type": content_type},
        )

    whole = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant()}
    _assert_clean_problem(send(b'{"trial_id": "' + ECHO_CANARY.encode()), 400, None)
    _assert_clean_problem(send(json.dumps(whole).encode(), "text/plain"), 415, None)
    _assert_clean_problem(send(json.dumps({**whole, "pad": "x" * 1_100_000}).encode()), 413, None)
    _assert_clean_problem(send(json.dumps({**whole, "site_id": None}).encode()), 422, "site_id")
    without_site = {k: v for k, v in whole.items() if k != "site_id"}
    _assert_clean_problem(send(json.dumps(without_site).encode()), 422, "site_id")
    _assert_clean_problem(send(json.dumps({**whole, "trial_id": 5}).encode()), 422, "trial_id")
    _assert_clean_problem(send(json.dumps({**whole, "extra": ECHO_CANARY}).encode()), 422, "extra")
    assert stored(stack) == (0, 0, 0)


def test_a_body_over_one_megabyte_is_413(stack: Stack) -> None:
    big = json.dumps({"trial_id": TRIAL, "site_id": stack.site_id, "applicant": {"pad": "x" * 1_100_000}})
    response = stack.client.post(
        "/api/v1/applications",
        data=big,
        headers={"Authorization": f"Bearer {stack.coordinator}", "Content-Type": "application/json"},
    )
    assert_problem(response, 413)
    assert stored(stack) == (0, 0, 0)


def test_missing_or_unknown_tokens_are_401(stack: Stack) -> None:
    payload = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant()}
    assert_problem(stack.client.post("/api/v1/applications", json=payload), 401)
    response = stack.client.post(
        "/api/v1/applications", json=payload, headers={"Authorization": "Bearer acr_not-a-token"}
    )
    assert_problem(response, 401)
    assert stored(stack) == (0, 0, 0)


def test_a_coordinator_cannot_submit_to_another_site(stack: Stack) -> None:
    with stack.db.transaction() as session:
        session.add(Site(site_id="site_other", trial_id=TRIAL, name="Other hospital", status="RECRUITING"))
        other = create_token(session, Role.COORDINATOR, ["site_other"])
    response = stack.submit(eligible_applicant(), token=other)
    assert_problem(response, 403)
    assert stored(stack) == (0, 0, 0)


def test_a_second_submission_of_the_same_applicant_is_409_pointing_at_the_first(stack: Stack) -> None:
    first = stack.submit(eligible_applicant()).get_json()
    written = _rows_written_with_an_application(stack)
    body = assert_problem(stack.submit(eligible_applicant(abi=0.4)), 409)
    assert body["existing_application"] == first["id"]
    assert body["existing_application_url"] == f"/api/v1/applications/{first['id']}"
    assert stored(stack) == (1, 1, 1)
    # None of its dependent rows either: only the audit entry of the refused attempt (scenario 31).
    assert _rows_written_with_an_application(stack) == {
        **written,
        "audit_pending": written["audit_pending"] + 1,
    }


def _rows_written_with_an_application(stack: Stack) -> dict[str, int]:
    tables = (
        "counted_applications",
        "count_changes",
        "audit_pending",
        "audit_entries",
        "idempotency_records",
    )
    with stack.db.sessions() as session:
        return {table: session.scalar(text(f"SELECT count(*) FROM {table}")) or 0 for table in tables}  # noqa: S608


def test_a_trial_that_is_not_recruiting_refuses_applications(stack: Stack) -> None:
    with stack.db.transaction() as session:
        session.execute(update(Trial).values(overall_status="COMPLETED"))
    body = assert_problem(stack.submit(eligible_applicant()), 409)
    assert "COMPLETED" in body["detail"]
    assert stored(stack) == (0, 0, 0)


def test_a_site_that_is_not_recruiting_refuses_applications(stack: Stack) -> None:
    with stack.db.transaction() as session:
        session.execute(update(Site).values(status="SUSPENDED"))
    body = assert_problem(stack.submit(eligible_applicant()), 409)
    assert "SUSPENDED" in body["detail"]


def test_an_idempotent_retry_replays_the_first_answer_and_stores_once(stack: Stack) -> None:
    first = stack.submit(eligible_applicant(), **{"Idempotency-Key": '"k-123"'})
    again = stack.submit(eligible_applicant(), **{"Idempotency-Key": '"k-123"'})
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert stored(stack) == (1, 1, 1)


def test_the_same_idempotency_key_with_another_body_is_422(stack: Stack) -> None:
    stack.submit(eligible_applicant(), **{"Idempotency-Key": "k-9"})
    assert_problem(stack.submit(eligible_applicant(abi=0.3), **{"Idempotency-Key": "k-9"}), 422)
    assert stored(stack)[0] == 1


def test_idempotency_keys_are_scoped_to_the_caller(stack: Stack) -> None:
    with stack.db.transaction() as session:
        colleague = create_token(session, Role.COORDINATOR, [stack.site_id])
    first = stack.submit(eligible_applicant(), **{"Idempotency-Key": "shared"}).get_json()
    other = stack.submit(eligible_applicant("S-002"), token=colleague, **{"Idempotency-Key": "shared"})
    assert other.status_code == 202 and other.get_json()["id"] != first["id"]


@pytest.mark.parametrize("key", ['""', "x" * 300, "caf\u00e9"])
def test_a_malformed_idempotency_key_is_400(stack: Stack, key: str) -> None:
    response = stack.client.post(
        "/api/v1/applications",
        data=json.dumps({"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant()}),
        headers={
            "Authorization": f"Bearer {stack.coordinator}",
            "Content-Type": "application/json",
            "Idempotency-Key": key.encode().decode("latin-1"),
        },
    )
    assert_problem(response, 400)
    assert stored(stack) == (0, 0, 0)


def test_reading_an_application_shows_its_status_observations_and_history(stack: Stack) -> None:
    created = stack.submit(eligible_applicant()).get_json()
    response = stack.client.get(
        f"/api/v1/applications/{created['id']}", headers={"Authorization": f"Bearer {stack.coordinator}"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "submitted" and body["criteria"] == [] and body["observations"]["abi"] == 0.5


def test_s33_an_unknown_id_or_another_sites_application_is_the_same_404(stack: Stack) -> None:
    """Scenario 33 (the async half, a decision visible after the 202 within its bound, is
    tests/integration/test_status_resource.py, with real workers)."""
    created = stack.submit(eligible_applicant()).get_json()
    with stack.db.transaction() as session:
        session.add(Site(site_id="site_other", trial_id=TRIAL, name="Other hospital", status="RECRUITING"))
        other = create_token(session, Role.COORDINATOR, ["site_other"])
    hidden = stack.client.get(
        f"/api/v1/applications/{created['id']}", headers={"Authorization": f"Bearer {other}"}
    )
    unknown = stack.client.get("/api/v1/applications/app_nope", headers={"Authorization": f"Bearer {other}"})
    shown = [assert_problem(r, 404) for r in (hidden, unknown)]
    # No existence leak: the same answer as for an id that never existed, the id aside.
    assert shown[0]["detail"].replace(created["id"], "ID") == shown[1]["detail"].replace("app_nope", "ID")
    assert_problem(
        stack.client.get("/api/v1/applications/app_nope", headers={"Authorization": f"Bearer {stack.admin}"}),
        404,
    )


def test_the_list_pages_with_signed_cursors_newest_first(stack: Stack) -> None:
    ids = [stack.submit(eligible_applicant(f"S-{n}")).get_json()["id"] for n in range(5)]
    auth = {"Authorization": f"Bearer {stack.coordinator}"}
    seen: list[str] = []
    url = "/api/v1/applications?limit=2"
    pages = 0
    while url:
        body = stack.client.get(url, headers=auth).get_json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        url = f"/api/v1/applications?limit=2&cursor={body['next_cursor']}" if body["next_cursor"] else ""
    assert seen == list(reversed(ids)) and pages == 3


def test_s27_walking_the_pages_while_others_submit_sees_each_earlier_application_once(stack: Stack) -> None:
    """Scenario 27 on the application list (the event feed's own is test_event_feed.py's reader racing
    writers): a writer thread submits all along while a reader walks the pages; every application that
    existed at the start is seen exactly once, in order, and a cursor read again gives the same page."""
    existing = [stack.submit(eligible_applicant(f"OLD-{n}")).get_json()["id"] for n in range(10)]
    walking = threading.Event()
    written: list[int] = []

    def write() -> None:
        client = stack.app.test_client()
        while not walking.is_set() and len(written) < 200:
            body = {
                "trial_id": TRIAL,
                "site_id": stack.site_id,
                "applicant": eligible_applicant(f"NEW-{len(written)}"),
            }
            answer = client.post("/api/v1/applications", json=body, headers=auth_of(stack.coordinator))
            written.append(answer.status_code)

    writer = threading.Thread(target=write)
    writer.start()
    seen: list[str] = []
    pages: dict[str, list[str]] = {}
    cursor = ""
    while True:
        before = len(written)
        url = "/api/v1/applications?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = stack.client.get(url, headers=auth_of(stack.coordinator)).get_json()
        seen += [item["id"] for item in body["items"]]
        pages[cursor] = [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
        wait_until(lambda before=before: len(written) > before, timeout=30, what="a submission between pages")
    walking.set()
    writer.join()
    assert set(written) == {202}
    assert len(seen) == len(set(seen))  # no duplicates
    assert [i for i in seen if i in existing] == list(reversed(existing))  # no skips, newest first
    for page_cursor, items in pages.items():
        if page_cursor:  # a cursor is stable: the page after it holds what it held
            again = stack.client.get(
                f"/api/v1/applications?limit=3&cursor={page_cursor}", headers=auth_of(stack.coordinator)
            )
            assert [item["id"] for item in again.get_json()["items"]] == items


def auth_of(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_s32_a_garbled_truncated_tampered_or_foreign_cursor_is_400_and_a_big_limit_422(stack: Stack) -> None:
    for n in range(3):
        stack.submit(eligible_applicant(f"S-{n}"))
    auth = {"Authorization": f"Bearer {stack.coordinator}"}
    cursor = stack.client.get("/api/v1/applications?limit=1", headers=auth).get_json()["next_cursor"]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert_problem(stack.client.get(f"/api/v1/applications?cursor={tampered}", headers=auth), 400)
    assert_problem(stack.client.get("/api/v1/applications?cursor=garbage!", headers=auth), 400)
    for truncated in (cursor[: len(cursor) // 2], cursor[:-1]):
        refused = assert_problem(
            stack.client.get(f"/api/v1/applications?cursor={truncated}", headers=auth), 400
        )
        assert refused["type"] == "/problems/invalid-cursor"
    # The page size is refused above its documented maximum (200), not clamped.
    assert_problem(stack.client.get("/api/v1/applications?limit=201", headers=auth), 422, "limit")
    admin = {"Authorization": f"Bearer {stack.admin}"}
    assert_problem(stack.client.get(f"/api/v1/applications?limit=1&cursor={cursor}", headers=admin), 400)


def test_a_coordinator_lists_only_its_own_sites(stack: Stack) -> None:
    with stack.db.transaction() as session:
        session.add(Site(site_id="site_other", trial_id=TRIAL, name="Other hospital", status="RECRUITING"))
        other = create_token(session, Role.COORDINATOR, ["site_other"])
    stack.submit(eligible_applicant())
    body = stack.client.get("/api/v1/applications", headers={"Authorization": f"Bearer {other}"}).get_json()
    assert body["items"] == []


def test_list_filters_are_validated(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.admin}"}
    assert_problem(stack.client.get("/api/v1/applications?status=lost", headers=auth), 422, "status")
    assert_problem(stack.client.get("/api/v1/applications?limit=1000", headers=auth), 422, "limit")


def test_trials_sites_and_criteria_are_readable(stack: Stack) -> None:
    stack.submit(eligible_applicant())
    auth = {"Authorization": f"Bearer {stack.coordinator}"}
    trials = stack.client.get("/api/v1/trials", headers=auth).get_json()["items"]
    trial = next(t for t in trials if t["trial_id"] == TRIAL)
    assert (
        trial["applied_count"] == 1
        and trial["enrollment_target"] == 27
        and trial["sponsor"].startswith("Allife")
    )
    assert stack.client.get("/api/v1/trials/nct06359912", headers=auth).get_json()["trial_id"] == TRIAL
    sites = stack.client.get(f"/api/v1/trials/{TRIAL}/sites", headers=auth).get_json()["items"]
    assert [(s["city"], s["status"], s["applied_count"]) for s in sites] == [("Beijing", "RECRUITING", 1)]
    criteria = stack.client.get(f"/api/v1/trials/{TRIAL}/criteria", headers=auth).get_json()
    assert criteria["version"] == 1 and len(criteria["criteria"]) == 25
    assert_problem(stack.client.get("/api/v1/trials/NCT00000000", headers=auth), 404)


def test_health_readiness_and_the_openapi_document(stack: Stack) -> None:
    assert stack.client.get("/healthz").status_code == 200
    ready = stack.client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"] == {"database": "ok", "broker": "ok"}
    document = stack.client.get("/openapi.json").get_json()
    assert "/api/v1/applications" in document["paths"]
    schema = json.dumps(document)
    assert "hemoglobin_g_l" in schema and "problem" in schema.lower()


def _concurrently(stack: Stack, count: int, headers: dict[str, str]) -> list[Any]:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    barrier = Barrier(count)
    payload = {"trial_id": TRIAL, "site_id": stack.site_id, "applicant": eligible_applicant()}

    def post(_: int) -> Any:
        client = stack.app.test_client()
        barrier.wait()
        return client.post(
            "/api/v1/applications",
            json=payload,
            headers={"Authorization": f"Bearer {stack.coordinator}", **headers},
        )

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(post, range(count)))


def test_racing_submissions_of_one_applicant_store_it_once(stack: Stack) -> None:
    responses = _concurrently(stack, 8, {})
    assert sorted(r.status_code for r in responses) == [202] + [409] * 7
    assert stored(stack) == (1, 1, 1)


def test_s22_twenty_racing_posts_with_one_idempotency_key_store_one_and_replay_its_answer(
    stack: Stack,
) -> None:
    """Scenario 22. The design makes a racer wait for the first request's answer (the intake lock)
    rather than answer 409 while it is in flight, so every racer gets that answer, byte for byte."""
    responses = _concurrently(stack, 20, {"Idempotency-Key": "race-1"})
    assert [r.status_code for r in responses] == [202] * 20
    assert len({r.get_data() for r in responses}) == 1  # byte-identical
    accepted = responses
    assert stored(stack) == (1, 1, 1)
    afterwards = stack.submit(eligible_applicant(), **{"Idempotency-Key": "race-1"})
    assert afterwards.status_code == 202 and afterwards.headers["Idempotent-Replayed"] == "true"
    assert afterwards.get_data() == accepted[0].get_data()


def test_authentication_comes_before_validation_and_admins_do_not_submit(stack: Stack) -> None:
    no_token = stack.client.post("/api/v1/applications", json={"trial_id": TRIAL, "applicant": {"abi": "x"}})
    assert_problem(no_token, 401)
    assert_problem(stack.submit(eligible_applicant(), token=stack.admin), 403)
    assert stored(stack) == (0, 0, 0)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/applications/a%00b",
        "/api/v1/trials/a%00b",
        "/api/v1/applications?site_id=a%00",
        "/api/v1/trials/%ED%B0%80",
    ],
)
def test_ids_with_control_or_odd_characters_are_422_not_500(stack: Stack, path: str) -> None:
    response = stack.client.get(path, headers={"Authorization": f"Bearer {stack.admin}"})
    assert response.status_code in (404, 422), response.get_data(as_text=True)


def test_a_huge_number_is_refused_not_a_crash(stack: Stack) -> None:
    huge = {"value": 10**400, "unit": "g/dL"}
    response = stack.client.post(
        "/api/v1/applications",
        data=json.dumps(
            {
                "trial_id": TRIAL,
                "site_id": stack.site_id,
                "applicant": eligible_applicant(hemoglobin_g_l=huge),
            }
        ),
        headers={"Authorization": f"Bearer {stack.coordinator}", "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "applicant.hemoglobin_g_l")
