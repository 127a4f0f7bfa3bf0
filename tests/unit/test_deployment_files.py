"""docker-compose.yml and the Dockerfile name only commands and settings that exist.

Docker does not run on the development machines, so `docker compose config` cannot check them here;
these checks catch the mistakes it would not catch anyway: a wrong subcommand or a misspelt variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from config import Settings, queues
from services.cli import main

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


def test_every_accrual_service_runs_a_real_subcommand() -> None:
    services = compose()["services"]
    for name in ("api", "worker", "notifier", "beat"):
        subcommand = services[name]["command"][0]
        assert subcommand in main.commands, f"{name} runs unknown subcommand {subcommand}"
    assert "accrual db upgrade && accrual seed" in services["migrate"]["command"][-1]


def test_every_accrual_variable_is_a_setting() -> None:
    fields = {f"ACCRUAL_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith("ACCRUAL_"):
                assert variable in fields, f"{name} sets unknown {variable}"


def test_migrations_get_the_same_keys_as_every_other_container() -> None:
    """Migrations re-seal observations and webhook secrets (opening the old ones with the secret key) and
    re-chain the audit trail: a key generated inside the migrate container would seal what no other
    container can open, open nothing sealed before, and chain what none can verify."""
    services = compose()["services"]
    keys = ("ACCRUAL_DATA_KEYS", "ACCRUAL_AUDIT_KEYS", "ACCRUAL_SECRET_KEY")
    for variable in keys:
        assert services["migrate"]["environment"][variable] == services["api"]["environment"][variable]


def test_dependencies_exist_and_wait_for_health_checks() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on missing {dependency}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
    for name in ("postgres", "redis", "api"):
        assert "healthcheck" in services[name]


def test_state_lives_in_named_volumes_and_redis_keeps_its_queue() -> None:
    document = compose()
    assert set(document["volumes"]) == {"postgres-data", "redis-data"}
    redis_command = " ".join(document["services"]["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--maxmemory-policy noeviction" in redis_command


def test_the_image_copies_every_package_the_project_declares() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("config", "models", "services", "workers"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert 'ENTRYPOINT ["accrual"]' in dockerfile


def consumed_by_workers() -> dict[str, set[str]]:
    """The queues each compose service running `accrual worker` consumes."""
    consumed: dict[str, set[str]] = {}
    for name, service in compose()["services"].items():
        command = service.get("command", [])
        if command[:1] == ["worker"]:
            consumed[name] = set(command[command.index("--queues") + 1].split(","))
    return consumed


def test_the_compose_workers_between_them_consume_every_queue_tasks_are_sent_to() -> None:
    assert set().union(*consumed_by_workers().values()) == set(queues.ALL)


def test_notifications_have_workers_of_their_own_in_compose() -> None:
    consumed = consumed_by_workers()
    assert consumed["notifier"] == {queues.NOTIFICATIONS}
    assert queues.NOTIFICATIONS not in consumed["worker"]
