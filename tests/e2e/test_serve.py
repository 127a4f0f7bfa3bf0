"""`accrual serve` started as a user starts it, driven over HTTP until an applicant is decided."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.applicants import eligible_applicant
from tests.support.servers import free_port
from tests.support.stack import TRIAL
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def call(
    base: str, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null"), response.headers
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), error.headers


def ready(base: str) -> bool:
    try:
        return call(base, "GET", "/readyz")[0] == 200
    except OSError:
        return False


def serve(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str, list[str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    # Drain the pipe for the whole run, so the components' logs can never fill it and block them.
    threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True).start()
    wait_until(lambda: any("listening on" in line for line in lines), timeout=60, what="serve to start")
    # The line comes once the socket is bound: a script that waits for it may connect at once.
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: ready(base), timeout=60, what="readiness: " + "".join(lines))
    return process, base, lines


def stop(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, 15)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(5)
    if process.stdout is not None:
        process.stdout.close()


def decide_one(base: str, coordinator: str, site_id: str) -> dict[str, Any]:
    status, created, headers = call(
        base,
        "POST",
        "/api/v1/applications",
        coordinator,
        {"trial_id": TRIAL, "site_id": site_id, "applicant": eligible_applicant()},
    )
    assert status == 202 and created["status"] == "submitted"
    location = headers["Location"]

    def decision() -> dict[str, Any] | None:
        _, body, _ = call(base, "GET", location, coordinator)
        return body if body["status"] != "submitted" else None

    # The worker may still be starting when the API already answers: on a loaded machine (the suite's
    # other processes) that took over 30 s once, so the wait is generous; a decided one returns at once.
    result: dict[str, Any] = wait_until(decision, timeout=90, interval=0.05, what="a decision")
    return result


def test_first_start_on_embedded_defaults_prints_tokens_and_decides_an_applicant(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCRUAL_")}
    process, base, lines = serve(tmp_path, env)
    try:
        output = "".join(lines)
        admin = re.search(r"admin token:\s+(\S+)", output)
        coordinator = re.search(r"coordinator token:\s+(\S+) \(site (\S+)\)", output)
        assert admin and coordinator, output
        assert "E-mail is off: set ACCRUAL_SMTP_HOST" in output
        assert (tmp_path / "accrual-data" / "accrual.db").exists()
        result = decide_one(base, coordinator.group(1), coordinator.group(2))
        assert result["decision"] == "eligible" and len(result["criteria"]) == 25
        status, trials, _ = call(base, "GET", "/api/v1/trials", admin.group(1))
        counts = {t["trial_id"]: t["applied_count"] for t in trials["items"]}
        assert status == 200 and counts[TRIAL] == 1 and sum(counts.values()) == 1
    finally:
        stop(process)
        print("".join(lines))  # shown by pytest only when the test fails
    assert process.returncode == 0


def test_serve_on_postgresql_and_redis(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ACCRUAL_")},
        "ACCRUAL_DATABASE_URL": pg_url,
        "ACCRUAL_BROKER_URL": redis_url,
        "ACCRUAL_DATA_DIR": str(tmp_path / "data"),
    }
    process, base, lines = serve(tmp_path, env)
    try:
        output = "".join(lines)
        coordinator = re.search(r"coordinator token:\s+(\S+) \(site (\S+)\)", output)
        assert coordinator, output
        assert decide_one(base, coordinator.group(1), coordinator.group(2))["decision"] == "eligible"
    finally:
        stop(process)


def run_cli(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_an_unreachable_database_is_one_clear_line_naming_the_variable(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "ACCRUAL_DATABASE_URL": f"postgresql+psycopg://u:secret@127.0.0.1:{port}/x"}
    result = run_cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "ACCRUAL_DATABASE_URL" in result.stderr and f"127.0.0.1:{port}" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_broker_stops_serve_with_one_clear_line(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ACCRUAL_DATA_DIR": str(tmp_path),
        "ACCRUAL_BROKER_URL": f"redis://127.0.0.1:{port}/0",
    }
    env.pop("ACCRUAL_DATABASE_URL", None)
    result = run_cli("serve", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "ACCRUAL_BROKER_URL" in result.stderr and f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
