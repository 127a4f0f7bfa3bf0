"""docker-compose.yml, deploy/ and the Dockerfile: valid Compose files that name only commands and
settings that exist, and the deployment's promises (one way in, /metrics kept inside, health checks,
secrets generated once).

Docker does not run on the development machines: the Compose files are checked against the Compose
specification's JSON schema (the copy check-jsonschema ships), and by `docker compose config` where that
exists. The checks below catch what neither would: a wrong subcommand, a misspelt variable, a port
published twice, a mounted file that is missing.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import Settings, queues
from models.audit import AuditKeys
from models.sealing import Keyring
from services.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
SETUP = DEPLOY / "setup.yml"
BIN = Path(sys.executable).parent


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def compose() -> dict[str, Any]:
    return load(COMPOSE)


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
    for name in ("postgres", "redis", "api", "worker", "notifier", "beat"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"


def named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """The service's named volumes (source: target); bind mounts start with . or /."""
    mounts = (volume.split(":") for volume in service.get("volumes", []))
    return {mount[0]: mount[1] for mount in mounts if not mount[0].startswith((".", "/"))}


def test_state_lives_in_named_volumes_and_redis_keeps_its_queue() -> None:
    document = compose()
    services = document["services"]
    used = {name for service in services.values() for name in named_volumes(service)}
    assert used == set(document["volumes"]), "a named volume is used but not declared, or the reverse"
    assert named_volumes(services["postgres"]) == {"postgres-data": "/var/lib/postgresql/data"}
    assert named_volumes(services["redis"]) == {"redis-data": "/data"}
    # Caddy's certificates, ACME account and local CA: lost on each restart otherwise.
    assert named_volumes(services["proxy"])["caddy-data"] == "/data"
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


# --- the Compose specification ---------------------------------------------------------------------


def required_variables() -> set[str]:
    """The variables docker-compose.yml refuses to start without (`${NAME:?...}`)."""
    return set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))


def docker_compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        version = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return version.returncode == 0


def test_the_compose_files_follow_the_compose_specification_schema() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE), str(SETUP)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize("path", [COMPOSE, SETUP], ids=lambda path: path.name)
def test_docker_compose_accepts_the_compose_files(path: Path) -> None:
    if not docker_compose_works():
        pytest.skip("needs the docker client with its compose plugin (the schema test checks the files)")
    dummies = {name: "dummy" for name in required_variables()}
    result = subprocess.run(
        ["docker", "compose", "-f", str(path), "config", "-q"],
        cwd=ROOT,
        env={**os.environ, **dummies},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


# --- one way in: the proxy -------------------------------------------------------------------------


def published(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The (host address, host port, protocol) the service publishes; a port without a host part is
    published on a random one, which nothing else can take."""
    found = []
    for entry in service.get("ports", []):
        mapping, _, protocol = str(entry).partition("/")
        parts = mapping.split(":")
        if len(parts) > 1:
            address = parts[0] if len(parts) == 3 else "*"  # every interface
            found.append((address, parts[-2], protocol or "tcp"))
    return found


@pytest.mark.parametrize("path", [COMPOSE, SETUP], ids=lambda path: path.name)
def test_every_service_has_an_image_or_a_build(path: Path) -> None:
    for name, service in load(path)["services"].items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"


def test_no_two_services_publish_the_same_host_port() -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, service in compose()["services"].items():
        for _address, port, protocol in published(service):
            assert (port, protocol) not in seen, f"{name} and {seen[(port, protocol)]} both publish {port}"
            seen[(port, protocol)] = name


def test_the_api_is_reached_only_through_the_proxy_which_it_trusts_for_one_hop() -> None:
    services = compose()["services"]
    api, proxy = services["api"], services["proxy"]
    # Any number of replicas: none binds a host port.
    assert "ports" not in api and api["expose"] == ["8000"]
    assert api["command"][api["command"].index("--port") + 1] == "8000"
    assert api["environment"]["ACCRUAL_TRUSTED_PROXIES"] == "1"
    assert proxy["image"] == "caddy:2"
    assert {(port, protocol) for _, port, protocol in published(proxy)} >= {("80", "tcp"), ("443", "tcp")}
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    for name, service in services.items():
        if name != "proxy":
            assert all(address.startswith("127.") for address, _, _ in published(service)), (
                f"{name} is published beyond this machine: only the proxy may be"
            )


def test_behind_tls_the_session_cookie_is_secure_and_links_are_https(tmp_path: Path) -> None:
    environment = compose()["services"]["api"]["environment"]
    assert environment["ACCRUAL_SESSION_COOKIE_SECURE"] == "true"
    assert environment["ACCRUAL_PUBLIC_URL"] == "${ACCRUAL_PUBLIC_URL:-https://localhost}"
    secure = Settings(data_dir=tmp_path, session_cookie_secure=environment["ACCRUAL_SESSION_COOKIE_SECURE"])
    assert secure.session_cookie_secure is True


CADDYFILE = DEPLOY / "Caddyfile"


def caddyfile_without_comments() -> str:
    """The Caddyfile without its comments."""
    return "\n".join(line.split("#", 1)[0].rstrip() for line in CADDYFILE.read_text().splitlines())


def test_the_caddyfile_answers_metrics_with_404_and_balances_every_api_replica() -> None:
    text = caddyfile_without_comments()
    assert re.search(r"^\s*@metrics path /metrics /metrics/\*$", text, re.MULTILINE)
    assert re.search(r"^\s*respond @metrics 404$", text, re.MULTILINE)
    assert re.search(r"dynamic a \{\s*name api\s*port 8000", text)
    assert re.search(r"^\s*tls \{\$CADDY_TLS:internal\}$", text, re.MULTILINE)
    # No trusted_proxies: Caddy replaces any X-Forwarded-For a client sends with the client's address.
    assert "trusted_proxies" not in text


def test_caddy_itself_reads_the_caddyfile_as_meant() -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("needs the caddy program (Debian package caddy)")
    result = subprocess.run(
        [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env={**os.environ, "SITE_ADDRESS": "accrual.example.org", "CADDY_TLS": "internal"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "warn" not in result.stderr.lower(), result.stderr
    server = json.loads(result.stdout)["apps"]["http"]["servers"]["srv0"]
    assert server["listen"] == [":443"]
    site = server["routes"][0]
    assert site["match"] == [{"host": ["accrual.example.org"]}]
    handlers = [
        (route.get("match"), route["handle"][0]) for route in site["handle"][0]["routes"]
    ]  # in the order Caddy runs them
    (metrics_match, refusal), (_, proxy) = handlers
    assert metrics_match == [{"path": ["/metrics", "/metrics/*"]}]
    assert refusal == {"handler": "static_response", "status_code": 404}
    assert proxy["handler"] == "reverse_proxy"
    assert proxy["dynamic_upstreams"] == {
        "source": "a",
        "name": "api",
        "port": "8000",
        "refresh": 5_000_000_000,
    }


# --- /metrics and Prometheus -----------------------------------------------------------------------


def test_metrics_answer_only_the_containers_range_which_leaves_out_the_gateway(tmp_path: Path) -> None:
    document = compose()
    allowed = document["services"]["api"]["environment"]["ACCRUAL_METRICS_ALLOWED_NETWORKS"]
    (pool,) = document["networks"]["default"]["ipam"]["config"]
    assert allowed == pool["ip_range"]
    networks = Settings(data_dir=tmp_path, metrics_allowed_networks=allowed).metrics_networks
    assert networks == [ip_network(pool["ip_range"])]
    assert ip_network(pool["ip_range"]).subnet_of(ip_network(pool["subnet"]))  # type: ignore[arg-type]
    # Docker's gateway is the source of the host's own connections (published ports, docker-proxy).
    assert ip_address(pool["gateway"]) not in networks[0]


def test_prometheus_is_optional_and_scrapes_every_api_replica_with_the_alert_rules() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert prometheus["image"].startswith("prom/prometheus")
    assert all(address == "127.0.0.1" for address, _, _ in published(prometheus))
    mounts = dict(volume.split(":", 2)[:2] for volume in prometheus["volumes"])
    assert mounts["./deploy/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = load(DEPLOY / "prometheus.yml")
    assert config["rule_files"] == [mounts["./deploy/alerts.yml"]]
    (job,) = config["scrape_configs"]
    assert job["dns_sd_configs"] == [{"names": ["api"], "type": "A", "port": 8000, "refresh_interval": "15s"}]
    assert job.get("metrics_path", "/metrics") == "/metrics"


ALERTS = DEPLOY / "alerts.yml"
DURATION = re.compile(r"^\d+[smhd]$")


def alert_rules() -> list[dict[str, Any]]:
    document = load(ALERTS)
    assert isinstance(document["groups"], list) and document["groups"]
    rules: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert group["name"] and isinstance(group["rules"], list) and group["rules"]
        rules += group["rules"]
    return rules


def test_the_alert_rules_are_a_prometheus_rules_file() -> None:
    rules = alert_rules()
    for rule in rules:
        assert isinstance(rule.get("alert"), str) and rule["alert"], rule
        assert isinstance(rule.get("expr"), str) and rule["expr"], rule
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert DURATION.match(rule.get("for", "0s")), rule
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "two rules share a name"


def readme_section(heading: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"\n{heading}\n", 1)[1]
    return section.split("\n## ", 1)[0]


def test_every_metric_the_readme_suggests_an_alert_on_has_a_rule() -> None:
    table = [
        line
        for line in readme_section("## Operating it: metrics and alerts").splitlines()
        if line.startswith("| `")
    ]
    assert len(table) >= 10, "the README's table of suggested alerts was not found"
    expressions = " ".join(rule["expr"] for rule in alert_rules())
    for row in table:
        for metric in re.findall(r"`(accrual_[a-z_]+)", row.split("|")[1]):
            # The age of the oldest undecided application carries that row's alert.
            if metric != "accrual_applications_undecided":
                assert re.search(rf"\b{metric}\b", expressions), f"no alert rule reads {metric}"


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


# --- health checks ---------------------------------------------------------------------------------


def test_workers_ping_their_own_celery_node_through_the_broker() -> None:
    services = compose()["services"]
    for name in ("worker", "notifier"):
        check = services[name]["healthcheck"]
        kind, command = check["test"]
        assert kind == "CMD-SHELL"
        # The image's entrypoint is `accrual`: the check names Python and Celery itself.
        assert command.startswith("python -m celery ")
        assert '-b "$$ACCRUAL_BROKER_URL"' in command
        assert "ACCRUAL_BROKER_URL" in services[name]["environment"]
        assert 'inspect ping -d "celery@$$HOSTNAME" --timeout 5' in command
        assert command.endswith("|| exit 1")
        # Celery's own timeout must end before Docker's does, counting the start-up of Python.
        assert int(check["timeout"].rstrip("s")) > 5 + 5


def test_accrual_worker_keeps_celerys_default_node_name() -> None:
    """The health check pings celery@$HOSTNAME: right while `accrual worker` names no node itself."""
    from celery.utils.nodenames import default_nodename

    assert default_nodename(None) == f"celery@{socket.gethostname()}"
    worker = main.commands["worker"].callback
    assert worker is not None
    tree = ast.parse(textwrap.dedent(inspect.getsource(worker)))
    (call,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "worker_main"
    ]
    arguments = [node.value for node in ast.walk(call) if isinstance(node, ast.Constant)]
    assert "worker" in arguments
    assert not {"-n", "--hostname"} & set(arguments)
    assert not [argument for argument in arguments if str(argument).startswith(("-n", "--hostname="))]


def test_the_beat_checks_that_its_schedule_runs() -> None:
    check = compose()["services"]["beat"]["healthcheck"]
    command = check["test"]
    assert command[:5] == ["CMD", "python", "-m", "workers.healthcheck", "beat"]
    max_age = float(command[command.index("--max-age-seconds") + 1])
    # The check refuses a limit under two sweep intervals (it would call a healthy scheduler dead).
    assert max_age >= 2 * Settings.model_fields["sweep_interval_seconds"].default


# --- mounted files and one-off setup ---------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE, SETUP], ids=lambda path: path.name)
def test_every_bind_mounted_path_exists_and_deploys_files_are_read_only(path: Path) -> None:
    for name, service in load(path)["services"].items():
        for volume in service.get("volumes", []):
            source, _target, *mode = volume.split(":")
            if not source.startswith((".", "/")):
                continue  # a named volume
            resolved = (path.parent / source).resolve()
            assert resolved.exists(), f"{name} mounts {source}, which does not exist"
            if resolved.is_relative_to(DEPLOY):
                assert mode == ["ro"], f"{name} mounts {source} writable"


def test_optional_services_sit_in_profiles_and_the_rest_start_by_default() -> None:
    profiles = {name: service.get("profiles") for name, service in compose()["services"].items()}
    assert profiles.pop("prometheus") == ["monitoring"]
    assert set(profiles.values()) == {None}
    assert load(SETUP)["services"]["keys"]["profiles"] == ["setup"]


def test_the_keys_service_runs_the_script_on_the_project_directory() -> None:
    keys = load(SETUP)["services"]["keys"]
    assert keys["image"] == compose()["services"]["api"]["image"]
    assert (SETUP.parent / keys["build"]).resolve() == ROOT
    (volume,) = keys["volumes"]
    source, target = volume.split(":")
    assert (SETUP.parent / source).resolve() == ROOT
    assert keys["entrypoint"] == ["sh", f"{target}/deploy/make-env.sh", f"{target}/.env"]
    assert keys["user"] == "root"  # to write into the mounted directory; the script hands .env back
    assert keys["network_mode"] == "none"


def make_env(target: Path) -> subprocess.CompletedProcess[str]:
    """deploy/make-env.sh as the image runs it: `python` and `accrual` on the PATH."""
    return subprocess.run(
        ["sh", str(DEPLOY / "make-env.sh"), str(target)],
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def dotenv(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_make_env_writes_every_secret_compose_requires_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    first = make_env(target)
    assert first.returncode == 0, first.stderr
    written = dotenv(target)
    assert set(written) == required_variables()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.stat().st_uid == tmp_path.stat().st_uid
    # Values compose reads literally (no $ to interpolate, no quotes or spaces) and the service accepts.
    assert all(re.fullmatch(r"[A-Za-z0-9+/=:_-]{32,}", value) for value in written.values()), written
    Keyring.parse(written["ACCRUAL_DATA_KEYS"])
    AuditKeys.parse(written["ACCRUAL_AUDIT_KEYS"])
    assert written["ACCRUAL_DATA_KEYS"].startswith("k1:") and written["ACCRUAL_AUDIT_KEYS"].startswith("a1:")

    before = target.read_bytes()
    again = make_env(target)
    assert again.returncode == 1 and "exists" in again.stderr
    assert target.read_bytes() == before


def test_make_env_leaves_no_file_when_a_secret_cannot_be_made(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").symlink_to(sys.executable)
    (fake_bin / "accrual").write_text("#!/bin/sh\nexit 3\n")
    (fake_bin / "accrual").chmod(0o755)
    result = subprocess.run(
        ["sh", str(DEPLOY / "make-env.sh"), str(target)],
        env={**os.environ, "PATH": f"{fake_bin}{os.pathsep}/usr/bin{os.pathsep}/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert not target.exists()


def test_the_readme_tells_operators_how_to_start() -> None:
    section = readme_section("## Production with docker-compose")
    for needed in (
        "docker compose -f deploy/setup.yml run --rm keys",
        "deploy/alerts.yml",
        "--profile monitoring",
    ):
        assert needed in section, f"the Production section does not mention {needed}"
