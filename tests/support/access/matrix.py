"""The access matrix: every protected route with the outcome each role may expect, as test cases."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.access.application_routes import APPLICATION_ROUTES
from tests.support.access.feed_routes import FEED_ROUTES
from tests.support.access.trial_routes import TRIAL_ROUTES
from tests.support.access.world import ROLES

# The protected routes (rule, method) the matrix knows: a new route fails the walk until it is added.
EXPECTED_PROTECTED_ROUTES = 38

ROUTES = APPLICATION_ROUTES + TRIAL_ROUTES + FEED_ROUTES

# Where the code and the contract disagree: (route label, role) -> the reason, marked xfail(strict).
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def matrix_cases() -> list[Any]:
    """One case per route and role, named "METHOD rule as role -> outcome"."""
    cases = []
    for route in ROUTES:
        for role in ROLES:
            outcome = route.expected[role]
            ident = f"{route.label} as {role} -> {outcome}"
            bug = KNOWN_BUGS.get((route.label, role))
            marks = [pytest.mark.xfail(strict=True, reason=f"bug: {bug}")] if bug else []
            cases.append(pytest.param(route, role, id=ident, marks=marks))
    return cases
