"""Randomisation at enrolment over HTTP (issue 15, part 1), on SQLite and PostgreSQL: the seeded trials'
schemes, allocation in the enrolment transaction, concealment, the code-break, an uploaded list,
stratification that waits for its factors, and `accrual allocation verify`."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

from sqlalchemy import select

from models import Allocation, AuditEntry, RandomisationScheme, Role
from models.db import Database
from models.sealing import Keyring
from services.audit import chain_pending_entries
from services.data_keys import reseal_randomisation
from services.randomisation import blocks
from services.randomisation.schemes import scheme_of
from services.tokens import create_token
from tests.support.applications import post
from tests.support.cli import invoke, stack_env
from tests.support.database import events, set_targets
from tests.support.http import assert_problem, auth
from tests.support.screening import decide, screen
from tests.support.stack import TRIAL, Stack

SCHEME_URL = f"/api/v1/trials/{TRIAL}/randomisation"
ARMS = ["allogeneic-endothelial-progenitor-cells", "clinical-standard-treatment"]


def enrol(stack: Stack, screening_id: str, **changes: Any) -> dict[str, Any]:
    answer = post(stack, decide(stack, screening_id=screening_id, **changes), "enroll")
    assert answer.status_code == 200, answer.get_json()
    body: dict[str, Any] = answer.get_json()
    return body


def set_scheme(stack: Stack, scheme: dict[str, Any]) -> Any:
    return stack.client.put(SCHEME_URL, json=scheme, headers=auth(stack.admin))


def arms_by_sequence(stack: Stack) -> dict[int, str]:
    with stack.db.sessions() as session:
        rows = session.scalars(select(Allocation).where(Allocation.trial_id == TRIAL)).all()
        return {row.sequence: row.sealed["arm_id"] for row in rows}


def verify(stack: Stack) -> Any:
    return invoke(stack_env(stack), "allocation", "verify", TRIAL)


def test_the_seeded_trial_allocates_at_enrolment_and_conceals_the_arm(stack: Stack) -> None:
    scheme = stack.client.get(SCHEME_URL, headers=auth(stack.admin)).get_json()
    assert (scheme["method"], scheme["strata"], scheme["block_sizes"]) == (
        "permuted_blocks",
        ["site"],
        [2, 4],
    )
    assert [arm["arm_id"] for arm in scheme["arms"]] == ARMS and scheme["commitment"].startswith("sha256:")
    first = enrol(stack, "RND-1")
    assert first["allocation"]["sequence"] == 1 and first["allocation"]["arm_id"] is None  # a coordinator
    assert first["allocation"]["stratum"] == f"site={stack.site_id}"
    as_admin = stack.client.get(f"/api/v1/applications/{first['id']}", headers=auth(stack.admin)).get_json()
    assert as_admin["allocation"]["arm_id"] in ARMS
    with stack.db.transaction() as session:
        unblinded = create_token(session, Role.COORDINATOR, [stack.site_id], unblinded=True)
    as_pharmacist = stack.client.get(
        f"/api/v1/applications/{first['id']}", headers=auth(unblinded)
    ).get_json()
    assert as_pharmacist["allocation"]["arm_id"] == as_admin["allocation"]["arm_id"]
    listed = stack.client.get(f"/api/v1/applications?trial_id={TRIAL}", headers=auth(stack.coordinator))
    allocations = {item["id"]: item["allocation"] for item in listed.get_json()["items"]}
    assert allocations[first["id"]] == {**as_admin["allocation"], "arm_id": None}
    fhir = f"/api/v1/applications/{first['id']}?format=fhir"
    assert "assignedArm" not in stack.client.get(fhir, headers=auth(stack.coordinator)).get_json()
    assert stack.client.get(fhir, headers=auth(stack.admin)).get_json()["assignedArm"] in ARMS
    allocated = events(stack, "application.allocated")
    assert allocated == [{"sequence": 1}]  # never the arm
    assert enrol(stack, "RND-2")["allocation"]["sequence"] == 2
    assert stack.client.get(SCHEME_URL, headers=auth(stack.admin)).get_json()["allocated"] == 2


def test_the_arm_is_sealed_at_rest(stack: Stack) -> None:
    enrolled = enrol(stack, "RND-SEALED")
    arm = stack.client.get(f"/api/v1/applications/{enrolled['id']}", headers=auth(stack.admin)).get_json()
    with stack.db.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT sealed FROM allocations").scalar_one()
        secret, state = connection.exec_driver_sql("SELECT secret, state FROM randomisation_schemes").first()  # type: ignore[misc]
    assert arm["allocation"]["arm_id"] not in stored and stack.site_id not in stored
    assert stored.startswith("v2:") and secret.startswith("v2:") and state.startswith("v2:")
    chain_pending_entries(stack.db)
    with stack.db.sessions() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.entity == "allocation")).all()
    assert audit and all(arm["allocation"]["arm_id"] not in str(entry.changes) for entry in audit)


def test_every_allocation_follows_the_seeded_list_and_verify_proves_it(stack: Stack) -> None:
    set_targets(stack, trial=None, site=None)
    for n in range(10):
        enrol(stack, f"RND-V{n}")
    checked = verify(stack)
    assert checked.exit_code == 0, checked.output
    assert "10 allocation(s) follow the scheme" in checked.output
    with stack.db.sessions() as session:
        scheme = scheme_of(session.get_one(RandomisationScheme, TRIAL))
    expected = [
        blocks.arm_at(scheme.drawn_from, f"site={stack.site_id}", p, scheme.arms, scheme.block_sizes).arm_id
        for p in range(1, 11)
    ]
    assert [arms_by_sequence(stack)[n] for n in range(1, 11)] == expected
    # Two participants' arms swapped in the database: verify names the first that no longer follows.
    arms = arms_by_sequence(stack)
    swap = next(n for n in range(1, 10) if arms[n] != arms[n + 1])
    with stack.db.transaction() as session:
        rows = {
            row.sequence: row
            for row in session.scalars(select(Allocation).where(Allocation.sequence.in_([swap, swap + 1])))
        }
        first, second = rows[swap].sealed, rows[swap + 1].sealed
        rows[swap].sealed = {**first, "arm_id": second["arm_id"]}
        rows[swap + 1].sealed = {**second, "arm_id": first["arm_id"]}
    refused = verify(stack)
    assert refused.exit_code == 1
    assert f"sequence {swap} " in refused.output and "not the one the scheme gives" in refused.output


def test_forty_simultaneous_enrolments_take_every_sequence_once_and_keep_the_blocks(stack: Stack) -> None:
    set_targets(stack, trial=None, site=None)
    ids = [decide(stack, screening_id=f"RACE-{n}") for n in range(40)]
    barrier = Barrier(len(ids))

    def enrol_now(application_id: str) -> int:
        client = stack.app.test_client()
        barrier.wait()
        response = client.post(
            f"/api/v1/applications/{application_id}/enroll", headers=auth(stack.coordinator)
        )
        return int(response.status_code)

    with ThreadPoolExecutor(len(ids)) as pool:
        assert list(pool.map(enrol_now, ids)) == [200] * 40
    arms = arms_by_sequence(stack)
    assert sorted(arms) == list(range(1, 41))  # none twice, none skipped
    with stack.db.sessions() as session:
        scheme = scheme_of(session.get_one(RandomisationScheme, TRIAL))
    listed = blocks.stratum_list(
        scheme.drawn_from, f"site={stack.site_id}", 40, scheme.arms, scheme.block_sizes
    )
    end = 0
    for block in listed:
        if end + len(block) > 40:
            break
        end += len(block)
        counts = Counter(arms[n] for n in range(1, end + 1))
        assert counts[ARMS[0]] == counts[ARMS[1]] == end // 2  # balanced at every block end
    assert verify(stack).exit_code == 0


def test_the_code_break_takes_a_reason_is_audited_and_announced(stack: Stack) -> None:
    enrolled = enrol(stack, "RND-BREAK")
    path = f"/api/v1/applications/{enrolled['id']}/unblind"
    assert_problem(stack.client.post(path, json={}, headers=auth(stack.admin)), 422, "reason")
    assert_problem(
        stack.client.post(path, json={"reason": "a coordinator's"}, headers=auth(stack.coordinator)), 403
    )
    not_allocated = decide(stack, screening_id="RND-NOT")
    refused = stack.client.post(
        f"/api/v1/applications/{not_allocated}/unblind", json={"reason": "why not"}, headers=auth(stack.admin)
    )
    assert "not allocated" in assert_problem(refused, 409)["detail"]
    reason = {"reason": "suspected SUSAR: the treating physician needs the arm"}
    broken = stack.client.post(path, json=reason, headers=auth(stack.admin))
    assert broken.status_code == 200, broken.get_json()
    assert broken.get_json()["allocation"]["unblinded_at"] is not None
    seen = stack.client.get(
        f"/api/v1/applications/{enrolled['id']}", headers=auth(stack.coordinator)
    ).get_json()
    assert seen["allocation"]["arm_id"] in ARMS  # the site sees the arm from now on
    assert events(stack, "allocation.unblinded")[-1]["sequence"] == enrolled["allocation"]["sequence"]
    assert "arm_id" not in events(stack, "allocation.unblinded")[-1]
    chain_pending_entries(stack.db)
    with stack.db.sessions() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.entity == "allocation", AuditEntry.action == "unblind")
        ).one()
    assert entry.entity_id == enrolled["id"] and entry.changes["reason"] == reason["reason"]
    assert (
        "already broken"
        in assert_problem(stack.client.post(path, json=reason, headers=auth(stack.admin)), 409)["detail"]
    )


def test_the_scheme_is_fixed_once_anyone_is_allocated_and_bad_schemes_name_their_field(stack: Stack) -> None:
    good = {"method": "permuted_blocks", "strata": ["site"], "block_sizes": [4]}
    assert_problem(set_scheme(stack, {**good, "block_sizes": [3]}), 422, "block_sizes")
    assert_problem(set_scheme(stack, {**good, "strata": ["abi"]}), 422, "strata")
    assert_problem(set_scheme(stack, {**good, "strata": ["site", "sex", "race", "diabetes"]}), 422, "strata")
    assert_problem(set_scheme(stack, {"method": "minimisation"}), 422, "factors")
    assert_problem(set_scheme(stack, {**good, "factors": [{"variable": "site"}]}), 422, "factors")
    minimising = {"method": "minimisation", "factors": [{"variable": "site"}, {"variable": "site"}]}
    assert_problem(set_scheme(stack, minimising), 422, "factors")
    assert_problem(set_scheme(stack, {**good, "arms": [{"arm_id": "a"}, {"arm_id": "a"}]}), 422, "arms")
    before = stack.client.get(SCHEME_URL, headers=auth(stack.admin)).get_json()["commitment"]
    changed = set_scheme(stack, good)
    assert changed.status_code == 200 and changed.get_json()["commitment"] != before  # a new seed
    enrol(stack, "RND-FIX")
    refused = assert_problem(set_scheme(stack, good), 409)
    assert "can no longer change" in refused["detail"]


def test_enrolment_waits_until_every_stratification_factor_is_known(stack: Stack) -> None:
    assert set_scheme(
        stack, {"method": "permuted_blocks", "strata": ["site", "fontaine_stage"], "block_sizes": [2]}
    )
    application_id = decide(stack, screening_id="RND-WAIT")
    waiting = assert_problem(post(stack, application_id, "enroll"), 422, "applicant.fontaine_stage")
    assert "waits until fontaine_stage is known" in waiting["detail"]
    with stack.db.sessions() as session:
        assert session.scalar(select(Allocation.application_id)) is None  # nothing half-written
    patched = stack.client.patch(
        f"/api/v1/applications/{application_id}",
        json={"applicant": {"fontaine_stage": 4}},
        headers=auth(stack.coordinator),
    )
    assert patched.status_code == 202, patched.get_json()
    screen(stack, application_id)
    enrolled = post(stack, application_id, "enroll")
    assert enrolled.status_code == 200, enrolled.get_json()
    assert enrolled.get_json()["allocation"]["stratum"] == f"site={stack.site_id};fontaine_stage=4"


def test_an_uploaded_list_is_followed_in_order_until_it_runs_out(stack: Stack) -> None:
    stratum = f"site={stack.site_id}"
    csv = f"sequence,stratum,arm\n101,{stratum},saline\n102,{stratum},cells\n103,site=OTHER,cells\n"
    scheme = {
        "method": "permuted_blocks",
        "strata": ["site"],
        "arms": [{"arm_id": "cells"}, {"arm_id": "saline"}],
    }
    assert_problem(
        set_scheme(stack, {**scheme, "list": "sequence,stratum,arm\n1,site=X,placebo"}), 422, "list"
    )
    answer = set_scheme(stack, {**scheme, "list": csv})
    assert answer.status_code == 200 and answer.get_json()["list_uploaded"] is True
    assert [enrol(stack, f"RND-L{n}")["allocation"]["sequence"] for n in range(2)] == [101, 102]
    assert arms_by_sequence(stack) == {101: "saline", 102: "cells"}
    exhausted = assert_problem(post(stack, decide(stack, screening_id="RND-L2"), "enroll"), 409)
    assert "no entry left for stratum" in exhausted["detail"]
    assert verify(stack).exit_code == 0


def test_minimisation_on_the_second_seeded_trial_needs_its_factors(stack: Stack) -> None:
    scheme = stack.client.get(
        "/api/v1/trials/NCT03239535/randomisation", headers=auth(stack.admin)
    ).get_json()
    assert scheme["method"] == "minimisation" and scheme["probability"] == 0.85
    assert [factor["variable"] for factor in scheme["factors"]] == ["site", "diabetes"]
    assert [arm["arm_id"] for arm in scheme["arms"]] == ["mesenchymal-stem-cells", "normal-saline"]


def test_minimisation_over_http_balances_and_verifies(stack: Stack) -> None:
    set_targets(stack, trial=None, site=None)
    minimising = {
        "method": "minimisation",
        "factors": [{"variable": "site"}, {"variable": "sex", "weight": 2}],
    }
    assert set_scheme(stack, minimising).status_code == 200
    for n in range(12):
        enrol(stack, f"RND-M{n}", sex=("female", "male")[n % 2])
    counts = Counter(arms_by_sequence(stack).values())
    assert abs(counts["allogeneic-endothelial-progenitor-cells"] - counts["clinical-standard-treatment"]) <= 2
    assert verify(stack).exit_code == 0


def test_the_consort_flow_shows_arms_only_to_those_who_may_see_them(stack: Stack) -> None:
    enrol(stack, "RND-C1")
    enrol(stack, "RND-C2")
    as_admin = stack.client.get(f"/api/v1/trials/{TRIAL}/recruitment", headers=auth(stack.admin)).get_json()
    assert [arm["arm_id"] for arm in as_admin["consort"]["allocated"]] == ARMS
    assert sum(arm["count"] for arm in as_admin["consort"]["allocated"]) == 2
    with stack.db.transaction() as session:
        sponsor = create_token(session, Role.SPONSOR, sponsor=as_admin_sponsor(stack))
    as_sponsor = stack.client.get(f"/api/v1/trials/{TRIAL}/recruitment", headers=auth(sponsor)).get_json()
    assert as_sponsor["consort"]["allocated"] == [{"arm_id": None, "count": 2, "suppressed": []}]
    scheme = stack.client.get(SCHEME_URL, headers=auth(sponsor))
    assert scheme.status_code == 200 and scheme.get_json()["commitment"].startswith("sha256:")


def as_admin_sponsor(stack: Stack) -> str:
    sponsor: str = stack.client.get(f"/api/v1/trials/{TRIAL}", headers=auth(stack.admin)).get_json()[
        "sponsor"
    ]
    return sponsor


def outsiders_permuted_blocks(
    seed: bytes, stratum: str, position: int, arms: list[list[Any]], sizes: list[int]
) -> str:
    """The documented algorithm written again from the README and docstrings alone, as an auditor would:
    HMAC-SHA256 draws, block sizes from `<stratum>|sizes`, Fisher-Yates with `<stratum>|block|<k>`."""

    def stream(label: str) -> Any:
        counter = 0
        while True:
            digest = hmac.new(
                seed, f"{label}|".encode() + counter.to_bytes(8, "big"), hashlib.sha256
            ).digest()
            counter += 1
            yield int.from_bytes(digest[:8], "big")

    def below(words: Any, n: int) -> int:
        limit = 2**64 - 2**64 % n
        return next(word for word in words if word < limit) % n

    size_words, start, number = stream(f"{stratum}|sizes"), 0, 0
    while True:
        number += 1
        size = sizes[below(size_words, len(sizes))]
        if position <= start + size:
            repeats = size // sum(ratio for _, ratio in arms)
            items = [arm for arm, ratio in arms for _ in range(ratio * repeats)]
            words = stream(f"{stratum}|block|{number}")
            for i in range(len(items) - 1, 0, -1):
                j = below(words, i + 1)
                items[i], items[j] = items[j], items[i]
            return items[position - start - 1]
        start += size


def test_an_outsider_checks_the_revealed_allocations_without_the_service(stack: Stack) -> None:
    set_targets(stack, trial=None, site=None)
    for n in range(9):
        enrol(stack, f"RND-R{n}")
    refused = invoke(stack_env(stack), "allocation", "reveal", TRIAL)
    assert refused.exit_code == 2 and "--allocation-complete" in refused.output
    revealed = invoke(stack_env(stack), "allocation", "reveal", TRIAL, "--allocation-complete")
    assert revealed.exit_code == 0, revealed.output
    document = json.loads(revealed.output)
    committed = document["committed"]
    canonical = json.dumps(committed, sort_keys=True, separators=(",", ":"))
    assert document["commitment"] == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert (
        document["commitment"]
        == stack.client.get(SCHEME_URL, headers=auth(stack.admin)).get_json()["commitment"]
    )
    seed = bytes.fromhex(committed["seed"])
    assert [a["sequence"] for a in document["allocations"]] == list(range(1, 10))
    for allocation in document["allocations"]:
        expected = outsiders_permuted_blocks(
            seed, allocation["stratum"], allocation["position"], committed["arms"], committed["block_sizes"]
        )
        assert allocation["arm_id"] == expected
    chain_pending_entries(stack.db)
    with stack.db.sessions() as session:
        assert (
            session.scalars(select(AuditEntry).where(AuditEntry.action == "reveal")).one().entity_id == TRIAL
        )


def test_keys_rotate_reseals_allocations_and_schemes_under_the_new_key(stack: Stack) -> None:
    enrolled = [enrol(stack, f"RND-K{n}")["id"] for n in range(2)]
    before = arms_by_sequence(stack)
    keys = f"{Keyring.new_entry('k2')},{stack.settings.data_keyring_text()}"
    rotated = invoke(
        stack_env(stack, ACCRUAL_SECRET_KEY="test-secret", ACCRUAL_DATA_KEYS=keys), "keys", "rotate"
    )
    assert rotated.exit_code == 0, rotated.output
    # Two allocations, and the seeded schemes' secret and state (two trials randomise).
    assert "allocations and randomisation schemes re-sealed under the current key: 6" in rotated.output
    with stack.db.engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT sealed FROM allocations").scalars().all()
        schemes = connection.exec_driver_sql("SELECT secret, state FROM randomisation_schemes").all()
    assert len(stored) == len(enrolled) and all(text.startswith("v2:k2:") for text in stored)
    assert all(value.startswith("v2:k2:") for row in schemes for value in row)
    rotated_db = Database(stack.settings.database_url, Keyring.parse(keys))
    try:
        with rotated_db.sessions() as session:
            rows = session.scalars(select(Allocation)).all()
            assert {row.sequence: row.sealed["arm_id"] for row in rows} == before
        assert reseal_randomisation(rotated_db) == 0
    finally:
        rotated_db.dispose()
