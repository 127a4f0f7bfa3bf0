"""Sealed observations are bound to their row: text copied from another application's row, as someone
with write access to the database would copy it, does not open there. Values in the v1 format (one
constant associated data, from before revision 0011) still open until revision 0011 or `accrual keys
rotate` re-seals them as v2. A screening's per-criterion results are sealed the same way, bound to
the screening (revision 0013 folded the rows they were kept in before)."""

from __future__ import annotations

import base64
import json
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from click.testing import Result
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, text

from models import Application, Event, Screening
from models.db import Database
from models.migrate import alembic_config, upgrade
from models.sealing import Keyring, SealingError, binding
from services.applications.results import read_results
from services.applications.screening import screen_application
from services.data_keys import reseal_observations, reseal_screening_results
from tests.support.applicants import eligible_applicant
from tests.support.cli import invoke, stack_env
from tests.support.http import auth
from tests.support.stack import Stack

V1_ASSOCIATED = b"accrual observations"  # the v1 format, as stored before revision 0011


def stored(db: Database, application_id: str) -> str:
    """The column as the database holds it."""
    with db.engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT observations FROM applications WHERE id = :id"), {"id": application_id}
            ).scalar_one()
        )


def overwrite(db: Database, application_id: str, value: str) -> None:
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE applications SET observations = :value WHERE id = :id"),
            {"value": value, "id": application_id},
        )


def copy_observations(db: Database, source: str, target: str) -> None:
    """What someone with write access to the database would do: one row's sealed text into another's."""
    with db.engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE applications SET observations ="
                " (SELECT observations FROM applications WHERE id = :source) WHERE id = :target"
            ),
            {"source": source, "target": target},
        )


def data_key(db: Database) -> bytes:
    keyring: Keyring = db.engine.dialect.accrual_keyring  # type: ignore[attr-defined]
    return keyring.keys[keyring.current]


def sealed_v1(key_id: str, key: bytes, value: dict[str, Any]) -> str:
    """A value in the v1 format, built by hand from its definition, not by the code under test."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(value).encode(), V1_ASSOCIATED)
    return f"v1:{key_id}:{base64.b64encode(nonce + sealed).decode()}"


def opened_v1(key: bytes, value: str) -> Any:
    prefix, _key_id, encoded = value.split(":", 2)
    assert prefix == "v1"
    raw = base64.b64decode(encoded)
    return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], V1_ASSOCIATED))


def submitted(stack: Stack, screening_id: str, **changes: Any) -> str:
    response = stack.submit(eligible_applicant(screening_id, **changes))
    assert response.status_code == 202, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def read(stack: Stack, application_id: str) -> Any:
    return stack.client.get(f"/api/v1/applications/{application_id}", headers=auth(stack.coordinator))


def as_v1(stack: Stack, application_id: str) -> dict[str, Any]:
    """Rewrite one application's observations in the v1 format, as a row from before 0011 holds them."""
    observations: dict[str, Any] = read(stack, application_id).get_json()["observations"]
    overwrite(stack.db, application_id, sealed_v1("k1", data_key(stack.db), observations))
    return observations


# --- the keyring ----------------------------------------------------------------------------------


def test_a_value_opens_only_with_the_binding_it_was_sealed_for() -> None:
    keyring = Keyring.parse(Keyring.new_entry("k1"))
    mine, theirs = (
        binding("applications", "observations", "app_1"),
        binding("applications", "observations", "app_2"),
    )
    sealed = keyring.seal({"abi": 0.42}, mine)
    assert sealed.startswith("v2:k1:") and keyring.open(sealed, mine) == {"abi": 0.42}
    for elsewhere in (
        theirs,
        binding("applications", "notes", "app_1"),
        binding("sites", "observations", "app_1"),
    ):
        with pytest.raises(SealingError, match="moved from another row"):
            keyring.open(sealed, elsewhere)


# --- over HTTP and through the ORM ----------------------------------------------------------------


def test_observations_copied_from_another_applications_row_do_not_open(stack: Stack) -> None:
    source = submitted(stack, "SWAP-SOURCE", birth_date="1951-03-17")
    target = submitted(stack, "SWAP-TARGET", birth_date="1966-08-02")
    before = stored(stack.db, target)
    copy_observations(stack.db, source, target)

    answer = read(stack, target)
    assert answer.status_code == 500 and answer.mimetype == "application/problem+json"
    assert answer.get_json()["type"] == "/problems/internal-error"
    body = answer.get_data(as_text=True)
    assert "1951" not in body and "birth_date" not in body and source not in body
    listed = stack.client.get("/api/v1/applications", headers=auth(stack.coordinator))
    assert listed.status_code == 500 and "1951" not in listed.get_data(as_text=True)
    corrected = stack.client.patch(
        f"/api/v1/applications/{target}",
        json={"applicant": {"wagner_grade": 2}},
        headers=auth(stack.coordinator),
    )
    assert corrected.status_code == 500 and "1951" not in corrected.get_data(as_text=True)
    assert stored(stack.db, target) == stored(stack.db, source) != before  # nothing half-written
    with stack.db.sessions() as session, pytest.raises(SealingError, match=target) as refused:
        session.get(Application, target)
    assert source not in str(refused.value)
    assert read(stack, source).get_json()["observations"]["birth_date"] == "1951-03-17"


def test_a_refresh_that_finds_moved_observations_leaves_no_sealed_text_behind(stack: Stack) -> None:
    source, target = submitted(stack, "SWAP-1"), submitted(stack, "SWAP-2")
    with stack.db.sessions() as session:
        application = session.get_one(Application, target)
        session.commit()  # its values stay in memory, its transaction ends
        copy_observations(stack.db, source, target)
        with pytest.raises(SealingError, match=target):
            session.refresh(application)
        for _ in range(2):  # every later access loads and fails again; none hands out the text
            with pytest.raises(SealingError, match=target):
                application.observations  # noqa: B018


def test_v1_values_still_open(stack: Stack) -> None:
    application_id = submitted(stack, "LEGACY-1", birth_date="1949-12-31")
    observations = as_v1(stack, application_id)
    assert stored(stack.db, application_id).startswith("v1:k1:")
    answer = read(stack, application_id)
    assert answer.status_code == 200 and answer.get_json()["observations"] == observations
    assert observations["birth_date"] == "1949-12-31"


def test_a_correction_seals_the_new_observations_bound_to_their_row(stack: Stack) -> None:
    application_id = submitted(stack, "CORRECTED")
    as_v1(stack, application_id)
    corrected = stack.client.patch(
        f"/api/v1/applications/{application_id}",
        json={"applicant": {"wagner_grade": 2}},
        headers=auth(stack.coordinator),
    )
    assert corrected.status_code == 202, corrected.get_data(as_text=True)
    assert stored(stack.db, application_id).startswith("v2:k1:")
    assert read(stack, application_id).get_json()["observations"]["wagner_grade"] == 2


def test_one_seal_per_write_and_one_open_per_read(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: Counter[str] = Counter()
    for name in ("seal", "open"):
        original = getattr(Keyring, name)
        monkeypatch.setattr(Keyring, name, counted(calls, name, original))

    def cost(act: Callable[[], object]) -> dict[str, int]:
        calls.clear()
        act()
        return dict(calls)

    application_id = ""

    def submit() -> None:
        nonlocal application_id
        application_id = submitted(stack, "COST")

    def screen() -> None:
        with stack.db.sessions() as session:
            event_id = session.scalars(
                select(Event.id).where(Event.application_id == application_id).order_by(Event.seq.desc())
            ).first()
        assert screen_application(stack.db, application_id, str(event_id), 5).status == "decided"

    def correct() -> None:
        answer = stack.client.patch(
            f"/api/v1/applications/{application_id}",
            json={"applicant": {"wagner_grade": 2}},
            headers=auth(stack.coordinator),
        )
        assert answer.status_code == 202

    # Seals are exact: one per write of the observations, none for a change of anything else. Opens are
    # bounded by what the SealedJSON of before cost: a view that loads the application twice opens twice.
    assert cost(submit) == {"seal": 1}
    read_cost = cost(lambda: read(stack, application_id))
    assert "seal" not in read_cost and 1 <= read_cost["open"] <= 2
    # The decision opens the observations and seals the screening's results; the observations are not
    # sealed again.
    assert cost(screen) == {"open": 1, "seal": 1}
    correct_cost = cost(correct)
    # The answer to a correction shows the application with its latest screening's results: one more open.
    # Two seals: the corrected observations, and the ones they replace, kept in previous_values.
    assert correct_cost["seal"] == 2 and 1 <= correct_cost["open"] <= 4


def counted(calls: Counter[str], name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return original(*args, **kwargs)

    return wrapper


# --- re-sealing: `accrual keys rotate` and revision 0011 ------------------------------------------


def test_rotation_reseals_v1_values_as_v2_bound_to_their_row(stack: Stack) -> None:
    applications = [submitted(stack, f"ROTATE-{n}") for n in range(3)]
    expected = {application_id: as_v1(stack, application_id) for application_id in applications}
    assert reseal_observations(stack.db, batch=2) == 3
    assert all(stored(stack.db, a).startswith("v2:k1:") for a in applications)
    assert reseal_observations(stack.db) == 0
    assert {a: read(stack, a).get_json()["observations"] for a in applications} == expected
    copy_observations(stack.db, applications[0], applications[1])
    assert read(stack, applications[1]).status_code == 500


def accrual_command(stack: Stack, *args: str, data_keys: str = "") -> Result:
    """`accrual ARGS...` in this process, configured as the stack is."""
    return invoke(stack_env(stack, ACCRUAL_SECRET_KEY="test-secret", ACCRUAL_DATA_KEYS=data_keys), *args)


def test_keys_rotate_reseals_v1_values_and_stops_at_a_value_moved_from_another_row(stack: Stack) -> None:
    source, legacy, moved = (submitted(stack, f"CLI-{n}") for n in range(3))
    as_v1(stack, legacy)
    rotated = accrual_command(stack, "keys", "rotate")
    assert rotated.exit_code == 0 and "re-sealed under the current key: 1" in rotated.output, rotated.output
    assert stored(stack.db, legacy).startswith("v2:k1:")

    copy_observations(stack.db, source, moved)
    old = stack.settings.data_keyring_text()
    stopped = accrual_command(stack, "keys", "rotate", data_keys=f"{Keyring.new_entry('k2')},{old}")
    assert stopped.exit_code == 2 and f"applications.observations of {moved}" in stopped.output
    assert source not in stopped.output and "birth_date" not in stopped.output
    assert stored(stack.db, source).startswith("v2:k1:")  # its batch was rolled back whole


BEFORE_0011 = (
    "INSERT INTO trials (trial_id, title, sponsor, phases, conditions, keywords, overall_status, sex,"
    " registry_record, enrolled_count, created_at, updated_at) VALUES ('T1', 't', 's', '[]', '[]', '[]',"
    " 'RECRUITING', 'ALL', '{}', 0, '2026-01-01', '2026-01-01')",
    "INSERT INTO sites (site_id, trial_id, name, status, enrolled_count, created_at)"
    " VALUES ('S1', 'T1', 'n', 'RECRUITING', 0, '2026-01-01')",
)
APPLICATION_0010 = (
    "INSERT INTO applications (id, trial_id, site_id, screening_id, status, observations, screening_round,"
    " screening_deliveries, submitted_at, version) VALUES (:id, 'T1', 'S1', :id, 'submitted', :observations,"
    " 1, 0, '2026-01-01', 1)"
)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database (no schema yet) with a data keyring."""
    url = (
        f"sqlite:///{tmp_path / 'old.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )
    db = Database(url, Keyring.parse(Keyring.new_entry("k1")))
    yield db
    db.dispose()


def test_revision_0011_binds_v1_values_to_their_row_and_its_downgrade_unbinds_them(
    empty_db: Database,
) -> None:
    db, key = empty_db, data_key(empty_db)
    upgrade(db, "0010")
    values = {"A1": {"abi": 0.42}, "A2": {"abi": 0.91}}
    with db.engine.begin() as connection:
        for statement in BEFORE_0011:
            connection.execute(text(statement))
        for application_id, value in values.items():
            connection.execute(
                text(APPLICATION_0010), {"id": application_id, "observations": sealed_v1("k1", key, value)}
            )
    upgrade(db)
    assert all(stored(db, a).startswith("v2:k1:") for a in values)
    with db.sessions() as session:
        assert {a: session.get_one(Application, a).observations for a in values} == values
    own = stored(db, "A2")
    copy_observations(db, "A1", "A2")
    with db.sessions() as session, pytest.raises(SealingError, match="A2"):
        session.get(Application, "A2")
    overwrite(db, "A2", own)

    cfg = alembic_config(db)
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0010")
    assert {a: opened_v1(key, stored(db, a)) for a in values} == values  # what 0010's code reads


# --- a screening's per-criterion results: one sealed value per screening (revision 0013) ------------


def stored_results(db: Database, application_id: str) -> str:
    with db.engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT results FROM screenings WHERE application_id = :id ORDER BY round DESC"),
                {"id": application_id},
            ).first()[0]  # type: ignore[index]
        )


def decided(stack: Stack, screening_id: str, **changes: Any) -> str:
    application_id = submitted(stack, screening_id, **changes)
    with stack.db.sessions() as session:
        event_id = session.scalars(select(Event.id).where(Event.application_id == application_id)).one()
    assert screen_application(stack.db, application_id, event_id, 5).status == "decided"
    return application_id


def test_screening_results_are_sealed_bound_to_their_screening_and_answered_as_before(stack: Stack) -> None:
    eligible, ineligible = decided(stack, "RESULTS-1"), decided(stack, "RESULTS-2", wagner_grade=5)
    criteria = read(stack, ineligible).get_json()["criteria"]
    assert len(criteria) == 25 and all(set(c) == CRITERION_FIELDS for c in criteria)
    excluding = {("inclusion", "not_met"), ("exclusion", "met")}
    assert [c for c in criteria if (c["kind"], c["outcome"]) in excluding]
    sealed_text = stored_results(stack.db, ineligible)
    assert sealed_text.startswith("v2:k1:") and '"' not in sealed_text  # no JSON in clear
    # Moved into another screening's row, as someone with write access could, it does not open there.
    with stack.db.engine.begin() as connection:
        connection.execute(
            text("UPDATE screenings SET results = :sealed WHERE application_id = :id"),
            {"sealed": sealed_text, "id": eligible},
        )
    assert read(stack, eligible).status_code == 500
    assert read(stack, ineligible).get_json()["criteria"] == criteria


CRITERION_FIELDS = {"id", "kind", "text", "outcome", "missing", "note", "reading"}


def test_keys_rotate_reseals_screening_results_under_the_new_key(stack: Stack) -> None:
    applications = [decided(stack, f"ROTATE-RESULTS-{n}", hiv_positive=None) for n in range(3)]
    assert any(c["missing"] == ["hiv_positive"] for c in read(stack, applications[0]).get_json()["criteria"])
    before = results_by_application(stack.db)
    keys = f"{Keyring.new_entry('k2')},{stack.settings.data_keyring_text()}"
    rotated = accrual_command(stack, "keys", "rotate", data_keys=keys)
    assert rotated.exit_code == 0, rotated.output
    assert "screening results re-sealed under the current key: 3" in rotated.output
    assert all(stored_results(stack.db, a).startswith("v2:k2:") for a in applications)
    rotated_db = Database(stack.settings.database_url, Keyring.parse(keys))
    try:
        assert results_by_application(rotated_db) == before
        assert reseal_screening_results(rotated_db) == 0
    finally:
        rotated_db.dispose()


def results_by_application(db: Database) -> dict[str, Any]:
    with db.sessions() as session:
        return {s.application_id: dict(s.results) for s in session.scalars(select(Screening))}


SCREENING_0012 = (
    "INSERT INTO screenings (id, application_id, round, criteria_version, decision, decided_at)"
    " VALUES (:id, :application_id, :round, 1, :decision, '2026-01-01')"
)
RESULT_0012 = (
    "INSERT INTO criterion_results (screening_id, position, criterion_id, kind, outcome, missing, note)"
    " VALUES (:screening_id, :position, :criterion_id, :kind, :outcome, :missing, :note)"
)
RESULTS_0012: dict[int, list[tuple[str, str, str, list[str], str | None]]] = {
    1: [
        ("I1", "inclusion", "met", [], None),
        ("I2", "inclusion", "unknown", ["abi", "tcpo2"], None),
        ("E1", "exclusion", "judgment", [], "ask the investigator"),
    ],
    2: [("I1", "inclusion", "not_met", [], None)],
    3: [],  # a dead letter: screened under a version, never evaluated
}


def test_revision_0013_folds_criterion_rows_into_one_sealed_value_and_its_downgrade_unfolds_them(
    empty_db: Database,
) -> None:
    db = empty_db
    upgrade(db, "0012")
    screenings = {1: ("A1", 1, "needs_review"), 2: ("A1", 2, "ineligible"), 3: ("A2", 1, "needs_review")}
    with db.engine.begin() as connection:
        for statement in BEFORE_0011:
            connection.execute(text(statement))
        for application_id in ("A1", "A2"):
            connection.execute(text(APPLICATION_0010), {"id": application_id, "observations": "v2:k1:x"})
        for screening, (application_id, round_, decision) in screenings.items():
            connection.execute(
                text(SCREENING_0012),
                {"id": screening, "application_id": application_id, "round": round_, "decision": decision},
            )
            for position, (criterion, kind, outcome, missing, note) in enumerate(RESULTS_0012[screening]):
                connection.execute(
                    text(RESULT_0012),
                    {
                        "screening_id": screening,
                        "position": position,
                        "criterion_id": criterion,
                        "kind": kind,
                        "outcome": outcome,
                        "missing": json.dumps(missing),
                        "note": note,
                    },
                )
    upgrade(db)
    keyring: Keyring = db.engine.dialect.accrual_keyring  # type: ignore[attr-defined]
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, application_id, round, results FROM screenings")).all()
    assert {
        screening: keyring.open(sealed, binding("screenings", "results", f"{application_id}/{round_}"))
        for screening, application_id, round_, sealed in rows
    } == {
        1: {
            "criteria": [
                {"id": "I1", "kind": "inclusion", "outcome": "met"},
                {"id": "I2", "kind": "inclusion", "outcome": "unknown", "missing": ["abi", "tcpo2"]},
                {"id": "E1", "kind": "exclusion", "outcome": "judgment", "note": "ask the investigator"},
            ]
        },
        2: {"criteria": [{"id": "I1", "kind": "inclusion", "outcome": "not_met"}]},
        3: {"criteria": []},
    }
    with db.sessions() as session:
        assert read_results(session.get_one(Screening, 1).results)[1].missing == ("abi", "tcpo2")

    cfg = alembic_config(db)
    with db.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0012")
    with db.engine.connect() as connection:
        back = connection.execute(
            text(
                "SELECT screening_id, criterion_id, kind, outcome, missing, note FROM criterion_results"
                " ORDER BY screening_id, position"
            )
        ).all()
    assert [(s, c, k, o, json.loads(m) if isinstance(m, str) else m, n) for s, c, k, o, m, n in back] == [
        (s, *row) for s, rows_ in RESULTS_0012.items() for row in rows_
    ]
