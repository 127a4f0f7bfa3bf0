"""Each role against each protected route, on SQLite and PostgreSQL: allowed, 403, or 404 where
existence would leak; a refused call changes nothing, and a hidden resource reads as a missing one.
The expectations (tests/support/access) come from the contract's table of roles, not from the code."""

from __future__ import annotations

import pytest

from tests.support.access.matrix import EXPECTED_PROTECTED_ROUTES, ROUTES, matrix_cases
from tests.support.access.routes import (
    ALLOWED,
    HIDDEN,
    MISSING_IDS,
    PARAMETER,
    Route,
    fill,
    normalised_detail,
    protected_routes,
)
from tests.support.access.world import ROLES, SPONSORS, World, assert_names_no_applicant
from tests.support.http import assert_problem


def test_the_matrix_names_every_protected_route(world: World) -> None:
    routes = protected_routes(world.stack)
    assert len(routes) == EXPECTED_PROTECTED_ROUTES, routes
    assert sorted((r.method, r.rule) for r in ROUTES) == routes
    assert all(set(r.expected) == set(ROLES) for r in ROUTES)


@pytest.mark.parametrize(("route", "role"), matrix_cases())
def test_s36_access_matrix_every_route_by_role_and_site(world: World, route: Route, role: str) -> None:
    params = {**world.ids, **(route.prepare(world) if route.prepare else {})}
    path = fill(route.rule, params) + route.query
    before = route.snapshot(world, params) if route.snapshot else None
    body = route.body(world, role, params) if route.body else None
    response = world.call(route.method, path, role, body)
    outcome = route.expected[role]
    if outcome == ALLOWED:
        assert response.status_code in route.statuses, (response.status_code, response.get_data(as_text=True))
        if role in SPONSORS:
            assert_names_no_applicant(world, response, application_ids_too=False)
        if route.check is not None:
            route.check(world, role, response, params)
        return
    assert isinstance(outcome, int)
    assert_problem(response, outcome)
    if route.snapshot is not None:
        assert route.snapshot(world, params) == before, "a refused call changed something"
    if route.hides_like_missing and outcome == HIDDEN:
        name = next(name for name in PARAMETER.findall(route.rule) if name in MISSING_IDS)
        missing = MISSING_IDS[name]
        again = world.call(route.method, fill(route.rule, {**params, name: missing}), role, body)
        assert again.status_code == HIDDEN
        assert normalised_detail(again, missing) == normalised_detail(response, params[name])
