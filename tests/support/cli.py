"""The `accrual` command run inside the test's process (click's CliRunner), configured only by the
environment it is given, as a shell would configure it; every database it opened is closed after.

A process per command costs more than a second of imports each; one end-to-end test
(tests/e2e/test_cli.py) still runs the real command in processes, as a user does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import chdir, contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from click.testing import CliRunner, Result

from config import Settings, get_settings
from models.db import Database
from services.cli import main
from tests.support.stack import Stack


@dataclass(frozen=True)
class Completed:
    """What a finished command left, shaped like subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


@contextmanager
def _root_logger_kept() -> Iterator[None]:
    """The command configures logging for its process (basicConfig); here the process is the test's,
    so its handler, bound to the runner's closed stream, must not outlive the command."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@contextmanager
def _closing_databases() -> Iterator[None]:
    opened: list[Database] = []
    for_settings = Database.for_settings

    def recorded(settings: Settings) -> Database:
        opened.append(for_settings(settings))
        return opened[-1]

    with mock.patch.object(Database, "for_settings", recorded):
        try:
            yield
        finally:
            for db in opened:
                db.dispose()


def invoke(env: Mapping[str, str], *args: str, cwd: Path | None = None) -> Result:
    """`accrual ARGS...` with exactly the ACCRUAL_* variables of `env` (the test's own are hidden)."""
    hidden: dict[str, str | None] = {name: None for name in os.environ if name.startswith("ACCRUAL_")}
    get_settings.cache_clear()
    try:
        with _root_logger_kept(), _closing_databases(), chdir(cwd or Path.cwd()):
            return CliRunner().invoke(main, list(args), env={**hidden, **env})
    finally:
        get_settings.cache_clear()


def completed(result: Result) -> Completed:
    return Completed(result.exit_code, result.stdout, result.stderr)


def accrual_variables(environment: Mapping[str, str]) -> dict[str, str]:
    """The ACCRUAL_* variables of a child process's environment (Stack.env), for `invoke`."""
    return {name: value for name, value in environment.items() if name.startswith("ACCRUAL_")}


def stack_env(stack: Stack, **variables: str) -> dict[str, str]:
    """The variables that point the command at the stack's data directory and database."""
    return {
        "ACCRUAL_DATA_DIR": str(stack.settings.data_dir),
        "ACCRUAL_DATABASE_URL": stack.settings.database_url,
        **variables,
    }
