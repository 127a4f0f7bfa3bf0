"""One seeded world per database for all the access tests of this package (building one takes a second)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.access.world import World, open_world
from tests.support.servers import PG_UNAVAILABLE, unavailable


@pytest.fixture(scope="package", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pg_available: bool
) -> Iterator[World]:
    """One seeded world per database for this package's cases."""
    if request.param == "postgres" and not pg_available:
        unavailable(PG_UNAVAILABLE)
    with open_world(request.param, tmp_path_factory.mktemp(f"matrix-{request.param}")) as built:
        yield built
