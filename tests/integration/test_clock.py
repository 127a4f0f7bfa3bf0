"""Dates decide as the calendar says, whatever the clocks: a submission a microsecond either side of
midnight UTC, and a consent date either side of an applicant's birthday. The process and the database
session run in UTC+14 (Pacific/Kiritimati), so any local date used by mistake would decide wrongly."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from models import Application, Event, Screening
from services.applications.results import read_results
from services.applications.screening import screen_application
from tests.support.applicants import eligible_applicant
from tests.support.stack import Stack

FAR_EAST = "Pacific/Kiritimati"  # UTC+14: its date is already tomorrow for ten hours of every UTC day
BIRTHDAY = "2008-10-01"  # eighteen on 2026-10-01; NCT06359912's I1 admits 18 to 80
SCREENING_IDS = itertools.count(1)


@pytest.fixture(autouse=True)
def far_east_clocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", FAR_EAST)
    time.tzset()
    assert time.localtime().tm_gmtoff == 14 * 3600
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def far_east_stack(stack: Stack) -> Stack:
    """The stack, with its PostgreSQL database's session time zone set to UTC+14 (SQLite has none)."""
    url = make_url(stack.settings.database_url)
    if url.get_backend_name() == "postgresql":
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"ALTER DATABASE \"{url.database}\" SET timezone TO '{FAR_EAST}'"))
        admin.dispose()
        stack.db.engine.dispose()  # new connections take the setting
        with stack.db.engine.connect() as connection:
            assert connection.execute(text("SHOW timezone")).scalar() == FAR_EAST
    return stack


def submitted_at(stack: Stack, instant: datetime, **changes: Any) -> str:
    """Submit at `instant` (the whole intake runs at that time) and screen now, weeks later."""
    applicant = eligible_applicant(f"CLOCK-{next(SCREENING_IDS)}", birth_date=BIRTHDAY, **changes)
    applicant = {k: v for k, v in applicant.items() if v is not None}
    with time_machine.travel(instant, tick=False):
        response = stack.submit(applicant)
    assert response.status_code == 202, response.get_json()
    application_id: str = response.get_json()["id"]
    with stack.db.sessions() as session:
        event_id = session.scalars(select(Event.id).where(Event.application_id == application_id)).first()
        assert session.get_one(Application, application_id).submitted_at == instant
    screen_application(stack.db, application_id, str(event_id), 3)
    return application_id


def age_outcome(stack: Stack, application_id: str) -> str:
    with stack.db.sessions() as session:
        [screening] = session.scalars(select(Screening).where(Screening.application_id == application_id))
        [outcome] = [r.outcome for r in read_results(screening.results) if r.criterion_id == "I1"]
    return outcome


def test_a_submission_either_side_of_midnight_utc_takes_its_own_date(far_east_stack: Stack) -> None:
    # Without a consent date, age is taken on the submission's date: the UTC date, not the server's.
    eve = submitted_at(
        far_east_stack, datetime(2026, 9, 30, 23, 59, 59, 999999, tzinfo=UTC), consent_date=None
    )
    birthday = submitted_at(far_east_stack, datetime(2026, 10, 1, 0, 0, tzinfo=UTC), consent_date=None)
    assert age_outcome(far_east_stack, eve) == "not_met"  # 17 until midnight UTC
    assert age_outcome(far_east_stack, birthday) == "met"


def test_the_consent_date_decides_whatever_the_time_of_submission(far_east_stack: Stack) -> None:
    just_after_midnight = datetime(2026, 10, 1, 0, 0, 1, tzinfo=UTC)
    consented_the_day_before = submitted_at(far_east_stack, just_after_midnight, consent_date="2026-09-30")
    consented_on_the_day = submitted_at(far_east_stack, just_after_midnight, consent_date="2026-10-01")
    assert age_outcome(far_east_stack, consented_the_day_before) == "not_met"  # 17 at consent
    assert age_outcome(far_east_stack, consented_on_the_day) == "met"
