"""The recruitment counters change in the transaction that changes the application: appended changes,
folded into the counters exactly once, and no counter row for concurrent writers to queue on."""

from __future__ import annotations

from datetime import date

import pytest
from alembic import command
from sqlalchemy import func, insert, select, text

from models import Application
from models.migrate import alembic_config
from models.reporting import CountChange, CountedApplication, StatusCount
from services.applications import transitions
from services.applications.transitions import Action
from services.reporting import counts
from services.reporting.counts import fold_changes, withdrawal_reason
from tests.support.reporting import a_lifecycle, fresh_counts, kept_counts, report
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack
from tests.support.threads import at_once
from workers.maintenance import fold_count_changes


def pending_changes(stack: Stack) -> int:
    with stack.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(CountChange)) or 0)


def folded_counts(stack: Stack) -> dict[tuple[str, str], int]:
    """The counter rows alone, without the pending changes; a withdrawal's coded reason (`wd:...`)
    under `withdrawn`."""
    folded: dict[tuple[str, str], int] = {}
    with stack.db.sessions() as session:
        rows = session.execute(select(StatusCount.site_id, StatusCount.status, StatusCount.count)).all()
    for site, status, n in rows:
        key = (site, "withdrawn" if withdrawal_reason(status) is not None else status)
        folded[key] = folded.get(key, 0) + n
    return {key: n for key, n in folded.items() if n}


def test_a_transition_that_rolls_back_leaves_the_counts_as_they_were(stack: Stack) -> None:
    eligible = decide(stack, screening_id="A")
    before, changes = kept_counts(stack), pending_changes(stack)
    with pytest.raises(RuntimeError), stack.db.transaction() as session:
        application = session.get_one(Application, eligible, with_for_update=True)
        transitions.advance(session, application, Action.ENROLL, by="test", reason=None)
        session.flush()
        raise RuntimeError("the request failed after the enrolment was written")
    assert kept_counts(stack) == before and pending_changes(stack) == changes
    with stack.db.sessions() as session:
        assert session.get_one(CountedApplication, eligible).status == "eligible"


def test_folding_moves_every_change_into_the_counters_once_and_the_report_never_moves(stack: Stack) -> None:
    a_lifecycle(stack)
    shown = report(stack, stack.admin)
    assert pending_changes(stack) > 0 and folded_counts(stack) == {}
    assert fold_count_changes(stack.db) > 0
    assert pending_changes(stack) == 0
    assert folded_counts(stack) == fresh_counts(stack)  # the counter rows alone now hold everything
    assert report(stack, stack.admin) == shown
    assert fold_count_changes(stack.db) == 0


def test_folders_running_at_once_fold_each_change_exactly_once(stack: Stack) -> None:
    total = 6000
    row = {"trial_id": TRIAL, "site_id": stack.site_id, "week_start": None, "criterion_id": None,
           "status": "submitted", "count": 1, "applied": 0, "enrolled": 0}  # fmt: skip
    with stack.db.transaction() as session:
        session.execute(insert(CountChange), [row] * total)

    def fold_until_none_left() -> None:
        while fold_changes(stack.db, limit=250):
            pass

    assert at_once(fold_until_none_left, threads=4) == []
    assert pending_changes(stack) == 0
    assert folded_counts(stack) == {(stack.site_id, "submitted"): total}


def test_the_repair_counts_a_withdrawal_after_enrolment_in_the_week_of_the_enrolment(stack: Stack) -> None:
    left = decide(stack, screening_id="A")
    for action, body in (("enroll", None), ("withdraw", {"reason": "moved away"})):
        response = stack.client.post(
            f"/api/v1/applications/{left}/{action}",
            json=body or {},
            headers={"Authorization": f"Bearer {stack.coordinator}"},
        )
        assert response.status_code == 200, response.get_json()
    with stack.db.sessions() as session:
        counted = session.get_one(CountedApplication, left)
        assert counted.status == counts.WITHDRAWN_AFTER_ENROLMENT
        assert counted.enrolled_week == counts.week_start(date.today())
    assert counts.count_application(stack.db, left) is False  # the repair agrees with what was counted


def test_two_transactions_counting_at_the_same_site_do_not_wait_for_each_other(pg_stack: Stack) -> None:
    """The old counters were upserted by each writer: the second decision at a site waited on the
    first's row lock until it committed. Appended changes lock nothing another writer needs."""
    first, second = (decide(pg_stack, screening_id=s) for s in ("A", "B"))
    with pg_stack.db.transaction() as holding:
        counts.count_change(holding, holding.get_one(Application, first), "enrolled")
        holding.flush()  # its changes are written and its locks held until this block ends
        with pg_stack.db.transaction() as other:
            # Waiting for a lock the first transaction holds would raise LockNotAvailable here.
            other.execute(text("SET LOCAL lock_timeout = '3s'"))
            counts.count_change(other, other.get_one(Application, second), "enrolled")
            other.flush()
    assert kept_counts(pg_stack)[(pg_stack.site_id, "enrolled")] == 2


def test_a_downgrade_folds_the_pending_changes_into_the_counters_first(stack: Stack) -> None:
    a_lifecycle(stack)
    expected = fresh_counts(stack)
    config = alembic_config(stack.db)
    with stack.db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0013")
    with stack.db.engine.connect() as connection:
        rows = connection.execute(text("SELECT site_id, status, count FROM status_counts")).all()
        versions = connection.execute(text("SELECT DISTINCT version FROM counted_applications")).all()
    assert {(site, status): n for site, status, n in rows if n} == expected
    assert versions == [(0,)]  # the older release's consumer counts each once more: a difference of 0
