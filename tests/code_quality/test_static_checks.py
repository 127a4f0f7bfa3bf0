"""ruff (lint and format), mypy (strict) and the layer contracts (import-linter) over the project, as
part of the suite, and the engine's purity at import time.

In the suite rather than after it, they run beside the other tests' waits on processes and databases
instead of adding their half-minute to every run; a finding fails the test with the tools' own report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def _cache_env() -> dict[str, str]:
    """mypy's cache in the user's cache directory, not in the checkout: a fresh clone on a machine that
    has checked the project before reuses what is unchanged (mypy compares files by content when their
    path or time differ), instead of checking the project and its libraries from cold for 40 s."""
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return {
        **os.environ,
        "MYPY_CACHE_DIR": os.environ.get("MYPY_CACHE_DIR") or str(cache_home / "accrual-mypy"),
    }


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        env=_cache_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",), ("lint-imports",)],
    ids=["ruff-check", "ruff-format", "mypy", "layers"],
)
def test_the_code_passes_its_static_checks(command: tuple[str, ...]) -> None:
    result = _run(*command)
    assert result.returncode == 0, f"{' '.join(command)} found:\n{result.stdout}\n{result.stderr}"


PROJECT = ("config", "models", "services", "workers")
FRAMEWORKS = ("flask", "flask_openapi3", "werkzeug", "sqlalchemy", "celery", "kombu", "redis", "httpx")


def test_importing_the_eligibility_engine_loads_nothing_of_the_project_and_no_framework() -> None:
    """The engine can be tested and benchmarked alone: importing it loads its own modules and pydantic."""
    probe = (
        "import sys, services.eligibility; "
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[1:])))"
    )
    command = [sys.executable, "-c", probe, *PROJECT, *FRAMEWORKS]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert loaded, "the probe saw no module at all"
    outside = {m for m in loaded if m != "services" and not m.startswith("services.eligibility")}
    assert outside == set(), f"importing services.eligibility also loaded {sorted(outside)}"
