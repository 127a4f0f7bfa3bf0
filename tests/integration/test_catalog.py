"""Per-process copies of tokens, trials and sites (services.catalog), on SQLite and PostgreSQL: a request
that finds them current reads neither again, and any committed change, made by any path, takes effect at
the next request."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from models import CatalogKind, CatalogVersion
from models.base import utcnow
from tests.support.applicants import eligible_applicant
from tests.support.database import counting_statements
from tests.support.http import assert_problem
from tests.support.stack import TRIAL, Stack

OTHER_TRIAL = "NCT03239535"


def version(stack: Stack, kind: CatalogKind) -> int:
    with stack.db.sessions() as session:
        return session.get_one(CatalogVersion, kind.value).version


def by_hand(stack: Stack, *statements: str, **values: object) -> None:
    """SQL run as an operator would run it, outside the service's code."""
    with stack.db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement), values)


def accepted(stack: Stack, screening_id: str) -> None:
    response = stack.submit(eligible_applicant(screening_id))
    assert response.status_code == 202, response.get_json()


def test_a_request_finding_its_copies_current_reads_neither_token_nor_trial_again(stack: Stack) -> None:
    accepted(stack, "WARM")
    with counting_statements(stack) as statements:
        accepted(stack, "CACHED")
    read = " ".join(statements).lower()
    assert "catalog_versions" in read
    assert "from api_tokens" not in read and "from trials" not in read and "from sites" not in read


def test_a_change_made_by_hand_takes_effect_at_the_next_request(stack: Stack) -> None:
    accepted(stack, "BEFORE")
    by_hand(stack, "UPDATE sites SET status = 'SUSPENDED' WHERE site_id = :site", site=stack.site_id)
    assert "SUSPENDED" in assert_problem(stack.submit(eligible_applicant("SITE-CLOSED")), 409)["detail"]
    by_hand(stack, "UPDATE sites SET status = 'RECRUITING' WHERE site_id = :site", site=stack.site_id)
    accepted(stack, "SITE-OPEN")
    by_hand(stack, "UPDATE api_tokens SET revoked_at = :now", now=utcnow())
    assert_problem(stack.submit(eligible_applicant("REVOKED")), 401)


def test_an_unknown_trial_once_created_is_found(stack: Stack) -> None:
    unknown = {"trial_id": "NCT00000042", "site_id": "site_new", "applicant": eligible_applicant("EARLY")}
    headers = {"Authorization": f"Bearer {stack.coordinator}"}
    assert_problem(stack.client.post("/api/v1/applications", json=unknown, headers=headers), 422, "trial_id")
    by_hand(
        stack,
        "INSERT INTO trials (trial_id, title, sponsor, phases, conditions, keywords, overall_status, sex,"
        " registry_record, enrolled_count, created_at, updated_at) VALUES ('NCT00000042', 't', 's', '[]',"
        " '[]', '[]', 'RECRUITING', 'ALL', '{}', 0, :now, :now)",
        "INSERT INTO sites (site_id, trial_id, name, status, enrolled_count, created_at)"
        " VALUES ('site_new', 'NCT00000042', 'n', 'RECRUITING', 0, :now)",
        now=utcnow(),
    )
    # Found now: the token may not submit to the new site.
    assert_problem(stack.client.post("/api/v1/applications", json=unknown, headers=headers), 403)


def test_the_version_moves_when_a_transaction_commits_and_not_when_it_rolls_back(stack: Stack) -> None:
    before = version(stack, CatalogKind.TRIALS)
    with stack.db.engine.connect() as connection:
        transaction = connection.begin()
        connection.execute(text("UPDATE trials SET title = title || ' (amended)'"))
        transaction.rollback()
    assert version(stack, CatalogKind.TRIALS) == before
    tokens_before = version(stack, CatalogKind.TOKENS)
    by_hand(stack, "UPDATE trials SET title = title || ' (amended)' WHERE trial_id = :trial", trial=TRIAL)
    assert version(stack, CatalogKind.TRIALS) > before
    assert version(stack, CatalogKind.TOKENS) == tokens_before  # another kind's copies stay valid


@pytest.mark.postgres
def test_writers_of_two_trials_do_not_wait_for_each_other_on_the_version(pg_stack: Stack) -> None:
    """The version's row is locked at commit only (a deferred trigger): a transaction still open on one
    trial does not hold back another trial's writer."""
    before = version(pg_stack, CatalogKind.TRIALS)
    engine = create_engine(pg_stack.settings.database_url)
    try:
        with engine.connect() as first, engine.connect() as second:
            open_one = first.begin()
            first.execute(text("UPDATE trials SET title = title WHERE trial_id = :t"), {"t": TRIAL})
            with second.begin():
                second.execute(text("SET LOCAL lock_timeout = '500ms'"))
                second.execute(
                    text("UPDATE trials SET title = title WHERE trial_id = :t"), {"t": OTHER_TRIAL}
                )
            open_one.commit()
    finally:
        engine.dispose()
    assert version(pg_stack, CatalogKind.TRIALS) == before + 2
