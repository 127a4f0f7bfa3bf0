"""The wheel holds every package of the project: `[tool.setuptools] packages` lists them by hand, and a
package missing there installs nowhere but an editable checkout (the smoke test's install fails)."""

from __future__ import annotations

import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def test_every_python_package_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(PROJECT).parts)
        for top in ("config", "models", "services", "workers")
        for init in (PROJECT / top).rglob("__init__.py")
    }
    assert found - listed == set()
