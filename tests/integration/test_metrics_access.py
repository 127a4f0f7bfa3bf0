"""/metrics answers only the networks allowed to scrape (loopback by default), and a storm of scrapes
costs one read of the database per ACCRUAL_METRICS_CACHE_SECONDS. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from services.app import create_app
from services.reporting.metrics import ScrapeCache
from tests.support.applicants import eligible_applicant
from tests.support.database import counting_statements
from tests.support.stack import Stack, database_url_for, make_settings

OUTSIDER = "10.1.2.3"
StackFactory = Callable[..., Stack]


@pytest.fixture(params=["sqlite", "postgres"])
def build(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StackFactory]:
    """Makes a Stack with the given settings, on SQLite or PostgreSQL; closed after the test."""
    built: list[Stack] = []

    def factory(**overrides: Any) -> Stack:
        url = database_url_for(request, tmp_path)
        built.append(Stack(make_settings(tmp_path, url, **overrides)))
        return built[-1]

    yield factory
    for stack in built:
        stack.close()


def scrape(client: Any, address: str) -> Any:
    return client.get("/metrics", environ_base={"REMOTE_ADDR": address})


def test_an_address_outside_the_allowed_networks_gets_a_plain_404_before_any_query(
    build: StackFactory,
) -> None:
    stack = build()
    for outsider in (OUTSIDER, "203.0.113.9", "2001:db8::1", "::ffff:10.1.2.3"):
        with counting_statements(stack) as statements:
            refused = scrape(stack.client, outsider)
        assert refused.status_code == 404 and refused.mimetype == "application/problem+json"
        assert "accrual_" not in refused.get_data(as_text=True)
        assert statements == []
    # The same answer as a path that does not exist: the endpoint's existence does not show.
    absent = stack.client.get("/no-such-path", environ_base={"REMOTE_ADDR": OUTSIDER}).get_json()
    assert {**scrape(stack.client, OUTSIDER).get_json(), "instance": None} == {**absent, "instance": None}


def test_loopback_is_served_over_ipv4_and_ipv6(build: StackFactory) -> None:
    stack = build()
    for loopback in ("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"):
        served = scrape(stack.client, loopback)
        assert served.status_code == 200 and served.content_type.startswith("text/plain"), loopback
        assert "accrual_applications_undecided" in served.get_data(as_text=True)


def test_the_setting_names_the_networks_that_may_scrape(build: StackFactory) -> None:
    stack = build(metrics_allowed_networks="10.0.0.0/8, 192.0.2.0/24")
    assert scrape(stack.client, OUTSIDER).status_code == 200
    assert scrape(stack.client, "192.0.2.77").status_code == 200
    assert scrape(stack.client, "127.0.0.1").status_code == 404  # the list replaces the default
    assert scrape(stack.client, "11.0.0.1").status_code == 404


def test_two_scrapes_within_the_interval_query_the_database_once(build: StackFactory) -> None:
    stack = build(metrics_cache_seconds=3600)
    stack.submit(eligible_applicant("CACHED"))
    with counting_statements(stack) as statements:
        first = scrape(stack.client, "127.0.0.1")
    read_once = len(statements)
    assert first.status_code == 200 and read_once > 0
    stack.submit(eligible_applicant("LATER"))
    with counting_statements(stack) as statements:
        second = scrape(stack.client, "127.0.0.1")
    assert second.status_code == 200 and statements == []
    assert second.get_data() == first.get_data()  # the cached figures: one undecided, not two
    assert "accrual_applications_undecided 1.0" in second.get_data(as_text=True)


def test_a_storm_of_concurrent_scrapes_reads_the_database_once(build: StackFactory) -> None:
    stack = build(metrics_cache_seconds=3600)
    with counting_statements(stack) as statements:
        assert scrape(create_app(stack.settings, stack.db).test_client(), "127.0.0.1").status_code == 200
    one_read = len(statements)
    start = threading.Barrier(8)
    answers: list[int] = []

    def scraper() -> None:
        client = stack.app.test_client()
        start.wait()
        answers.append(scrape(client, "127.0.0.1").status_code)

    with counting_statements(stack) as statements:
        threads = [threading.Thread(target=scraper) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == [200] * 8
    assert len(statements) == one_read > 0


def test_with_caching_off_every_scrape_reads_the_database(build: StackFactory) -> None:
    stack = build(metrics_cache_seconds=0)
    scrape(stack.client, "127.0.0.1")
    stack.submit(eligible_applicant("FRESH"))
    with counting_statements(stack) as statements:
        fresh = scrape(stack.client, "127.0.0.1").get_data(as_text=True)
    assert statements and "accrual_applications_undecided 1.0" in fresh


def test_the_cache_reads_again_once_its_figures_are_as_old_as_the_interval() -> None:
    now = [100.0]
    reads: list[bytes] = []

    def read() -> bytes:
        reads.append(f"read {len(reads)}".encode())
        return reads[-1]

    cache = ScrapeCache(5, clock=lambda: now[0])
    assert cache.get(read) == b"read 0"
    now[0] = 104.9
    assert cache.get(read) == b"read 0"
    now[0] = 105.0
    assert cache.get(read) == b"read 1" and len(reads) == 2


def test_a_failed_read_is_not_cached() -> None:
    cache = ScrapeCache(3600)

    def broken() -> bytes:
        raise RuntimeError("database away")

    with pytest.raises(RuntimeError):
        cache.get(broken)
    assert cache.get(lambda: b"figures") == b"figures"
