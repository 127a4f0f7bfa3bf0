"""The `accrual` command's database chores: the first test runs the real command in processes, as a
user runs it; the others run it inside the test's process (tests/support/cli.py), which saves a second
or more of imports per command."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import Settings
from models.db import Database
from models.migrate import head_revision, upgrade
from models.sealing import Keyring
from services.cli import _public_url
from services.trials.criteria import bundled_document
from tests.support.cli import Completed, completed, invoke
from tests.support.registry import new_study


def accrual_process(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`accrual ARGS...` in a process of its own, with no ACCRUAL_* variable but the data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCRUAL_")}
    env["ACCRUAL_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def accrual(tmp_path: Path, *args: str) -> Completed:
    """`accrual ARGS...` in this process, configured as `accrual_process` configures it."""
    return completed(invoke({"ACCRUAL_DATA_DIR": str(tmp_path / "data")}, *args, cwd=tmp_path))


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(content) if name.endswith(".json") else yaml.safe_dump(content))
    return str(path)


@pytest.mark.slow  # the command in processes
def test_db_upgrade_seed_and_tokens(tmp_path: Path) -> None:
    assert accrual_process(tmp_path, "db", "upgrade").returncode == 0
    first = accrual_process(tmp_path, "seed")
    again = accrual_process(tmp_path, "seed")
    assert first.returncode == again.returncode == 0 and "NCT06359912" in first.stdout
    token = accrual_process(tmp_path, "token", "create", "--role", "admin")
    assert (
        token.returncode == 0
        and token.stdout.strip().startswith("acr_")
        and len(token.stdout.splitlines()) == 1
    )
    refused = accrual_process(tmp_path, "token", "create", "--role", "coordinator", "--site", "site_nope")
    assert refused.returncode == 2 and "no such site" in refused.stderr
    site = ["--role", "coordinator", "--site", "site_5812946e17295a21a499"]
    mailed = accrual_process(tmp_path, "token", "create", *site, "--email", "coordinator@beijing.example")
    assert mailed.returncode == 0 and mailed.stdout.startswith("acr_")
    garbled = accrual_process(tmp_path, "token", "create", *site, "--email", "coordinator at beijing")
    assert garbled.returncode == 2 and "not an e-mail address" in garbled.stderr


def test_trials_import_is_all_or_nothing_and_names_the_bad_field(tmp_path: Path) -> None:
    accrual(tmp_path, "db", "upgrade")
    good = write(tmp_path, "good.json", new_study("NCT09999998"))
    broken = new_study("NCT09999997")
    del broken["protocolSection"]["identificationModule"]["briefTitle"]
    bad = write(tmp_path, "bad.json", broken)
    failed = accrual(tmp_path, "trials", "import", good, bad)
    assert failed.returncode == 2
    assert (
        "bad.json" in failed.stderr
        and "briefTitle" in failed.stderr
        and "nothing was imported" in failed.stderr
    )
    created = accrual(tmp_path, "trials", "import", good)
    assert created.returncode == 0 and "NCT09999998 (created)" in created.stdout
    assert "NCT09999998 (replaced)" in accrual(tmp_path, "trials", "import", good).stdout


def test_trials_criteria_attaches_a_new_version_once(tmp_path: Path) -> None:
    accrual(tmp_path, "db", "upgrade")
    accrual(tmp_path, "trials", "import", write(tmp_path, "study.json", new_study("NCT09999996")))
    document = copy.deepcopy(bundled_document("NCT06359912.criteria.yaml"))
    document["trial_id"] = "NCT09999996"
    path = write(tmp_path, "criteria.yaml", document)
    first = accrual(tmp_path, "trials", "criteria", "nct09999996", path)
    assert first.returncode == 0 and "new version 1" in first.stdout
    assert "unchanged, version 1" in accrual(tmp_path, "trials", "criteria", "NCT09999996", path).stdout
    document["criteria"][0]["rule"] = {"var": "nonsense", "eq": True}
    broken = accrual(tmp_path, "trials", "criteria", "NCT09999996", write(tmp_path, "broken.yaml", document))
    assert broken.returncode == 2 and "nonsense" in broken.stderr


def test_db_recount_counts_what_the_counters_do_not_hold(tmp_path: Path) -> None:
    assert accrual(tmp_path, "db", "upgrade").returncode == 0
    first = accrual(tmp_path, "db", "recount")
    assert first.returncode == 0 and first.stdout.strip() == "applications counted: 0", first.stderr


def test_token_list_revoke_audit_verify_and_key_rotation(tmp_path: Path) -> None:
    assert accrual(tmp_path, "db", "upgrade").returncode == 0
    assert accrual(tmp_path, "seed").returncode == 0
    made = accrual(tmp_path, "token", "create", "--role", "admin", "--name", "ops", "--expires-in-days", "2")
    assert made.returncode == 0
    listed = accrual(tmp_path, "token", "list")
    [line] = [row for row in listed.stdout.splitlines() if "\tops\t" in row]
    token_id, state = line.split("\t")[0], line.split("\t")[-1]
    assert state == "active" and made.stdout.strip() not in listed.stdout  # never the token itself
    assert accrual(tmp_path, "token", "revoke", token_id).returncode == 0
    assert accrual(tmp_path, "token", "list").stdout.count("\trevoked") == 1
    missing = accrual(tmp_path, "token", "revoke", "tok_nope")
    assert missing.returncode == 2 and "no such token" in missing.stderr
    verified = accrual(tmp_path, "audit", "verify")
    assert verified.returncode == 0 and "audit trail intact" in verified.stdout
    new_key = accrual(tmp_path, "keys", "new", "k2").stdout.strip()
    assert new_key.startswith("k2:") and len(new_key) > 40
    rotated = accrual(tmp_path, "keys", "rotate")
    assert rotated.returncode == 0 and "re-sealed under the current key: 0" in rotated.stdout


def test_db_upgrade_says_what_it_did(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'partial.db'}", Keyring.parse(Keyring.new_entry("k1")))
    try:
        upgrade(database, "0020")
        head = head_revision(database)
    finally:
        database.dispose()
    env = {
        "ACCRUAL_DATA_DIR": str(tmp_path / "data"),
        "ACCRUAL_DATABASE_URL": f"sqlite:///{tmp_path / 'partial.db'}",
    }
    moved = completed(invoke(env, "db", "upgrade", cwd=tmp_path))
    assert (
        moved.returncode == 0
        and moved.stdout.strip() == f"database schema upgraded from revision 0020 to {head}"
    )
    created = accrual(tmp_path, "db", "upgrade")
    assert created.stdout.strip() == f"database schema created at revision {head}"
    again = accrual(tmp_path, "db", "upgrade")
    assert again.stdout.strip() == f"database schema is current (revision {head}): nothing to do"


def test_trials_import_recognises_a_criteria_file_and_points_to_the_right_command(tmp_path: Path) -> None:
    accrual(tmp_path, "db", "upgrade")
    criteria = write(tmp_path, "NCT06359912.criteria.yaml", bundled_document("NCT06359912.criteria.yaml"))
    refused = accrual(tmp_path, "trials", "import", criteria)
    assert refused.returncode == 2
    assert "is a criteria file, not a registry record" in refused.stderr
    assert f"`accrual trials criteria NCT06359912 {criteria}`" in refused.stderr


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8123"),
        ("0.0.0.0", "http://127.0.0.1:8123"),  # noqa: S104 - a wildcard bind, links to loopback
        ("::1", "http://[::1]:8123"),
    ],
)
def test_the_public_url_follows_the_bound_address_unless_set(host: str, expected: str) -> None:
    unset = Settings(_env_file=None)  # type: ignore[call-arg]
    assert "public_url" not in unset.model_fields_set
    assert _public_url(unset, host, 8123) == expected
    chosen = Settings(_env_file=None, public_url="https://accrual.example.org")  # type: ignore[call-arg]
    assert _public_url(chosen, host, 8123) == "https://accrual.example.org"


def test_a_sponsor_token_names_its_sponsor_by_id_or_exact_name_and_an_unknown_one_is_refused(
    tmp_path: Path,
) -> None:
    assert accrual(tmp_path, "db", "upgrade").returncode == 0
    assert accrual(tmp_path, "seed").returncode == 0
    by_id = accrual(
        tmp_path, "token", "create", "--role", "sponsor", "--sponsor", "beijing-northland-biotech"
    )
    assert by_id.returncode == 0 and by_id.stdout.startswith("acr_"), by_id.stderr
    by_name = accrual(
        tmp_path, "token", "create", "--role", "sponsor", "--sponsor", "BEIJING NORTHLAND BIOTECH"
    )
    assert by_name.returncode == 0, by_name.stderr
    listed = accrual(tmp_path, "token", "list").stdout
    assert listed.count("\tsponsor\tBeijing Northland Biotech\t") == 2  # the exact name, kept once resolved
    refused = accrual(tmp_path, "token", "create", "--role", "sponsor", "--sponsor", "Beijing Northland")
    assert refused.returncode == 2 and "no trial names the sponsor 'Beijing Northland'" in refused.stderr
    assert "beijing-northland-biotech (Beijing Northland Biotech)" in refused.stderr
    assert (
        "allife-medical-science-and-technology-co-ltd (Allife Medical Science and Technology Co., Ltd.)"
        in (refused.stderr)
    )
