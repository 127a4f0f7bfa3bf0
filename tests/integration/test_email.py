"""Coordinators' e-mail against a real SMTP server (aiosmtpd) on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from models import ApiToken, EmailMessage, Site
from services.tokens import Role, TokenError, create_token
from tests.support.applications import post
from tests.support.database import set_targets
from tests.support.mail import Inbox, compose_all, pump_mail
from tests.support.screening import decide
from tests.support.stack import TRIAL, Stack, database_url_for, make_settings

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:aiosmtpd")
COORDINATOR_MAIL = "coordinator@beijing.example"


@pytest.fixture(params=["sqlite", "postgres"])
def mailing(request: pytest.FixtureRequest, tmp_path: Path, smtp_port: int) -> Iterator[Stack]:
    url = database_url_for(request, tmp_path)
    settings = make_settings(
        tmp_path,
        url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="none",
        smtp_timeout_seconds=2,
        mail_retry_schedule="0.05,0.05",
        public_url="https://accrual.example.org",
    )
    built = Stack(settings)
    with built.db.transaction() as session:
        create_token(session, Role.COORDINATOR, [built.site_id], email=COORDINATOR_MAIL)
        create_token(session, Role.COORDINATOR, [built.site_id], email="revoked@beijing.example")
        session.execute(
            update(ApiToken).where(ApiToken.email == "revoked@beijing.example").values(revoked_at=func.now())
        )
        other_site = session.scalars(select(Site).where(Site.trial_id != TRIAL)).first()
        assert other_site is not None
        create_token(session, Role.COORDINATOR, [other_site.site_id], email="elsewhere@example.org")
    yield built
    built.close()


def statuses(stack: Stack) -> list[tuple[str, int]]:
    with stack.db.sessions() as session:
        return [(m.status, m.attempts) for m in session.scalars(select(EmailMessage))]


def test_a_decision_is_mailed_to_the_sites_live_coordinators_without_clinical_data(
    mailing: Stack, inbox: Inbox
) -> None:
    application = decide(mailing, screening_id="MAIL-CANARY-7", wagner_grade=5)  # ineligible
    assert compose_all(mailing) == 1
    pump_mail(mailing)
    [(recipients, message)] = inbox.messages
    assert recipients == [COORDINATOR_MAIL]
    assert message["Subject"] == f"Accrual: application {application} is ineligible"
    body = message.get_content()
    assert f"https://accrual.example.org/api/v1/applications/{application}" in body
    for leak in ("MAIL-CANARY", "wagner", "Wagner", "I4", "ulcer", "1955"):
        assert leak not in body and leak not in message["Subject"]
    assert statuses(mailing) == [("sent", 1)]


def test_a_redelivered_event_is_mailed_once(mailing: Stack, inbox: Inbox) -> None:
    decide(mailing, screening_id="A")
    assert compose_all(mailing) == 1
    assert compose_all(mailing) == 0  # the relay delivered every event again
    pump_mail(mailing)
    assert len(inbox.messages) == 1


def test_recruitment_stopping_is_mailed_once_per_coordinator(mailing: Stack, inbox: Inbox) -> None:
    set_targets(mailing, trial=1, site=None)
    post(mailing, decide(mailing, screening_id="A"), "enroll")
    compose_all(mailing)
    pump_mail(mailing)
    subjects = sorted(m["Subject"] for _, m in inbox.messages)
    # the decision, then the trial closing; the site closing with it is told by the trial's message
    assert subjects == sorted([f"Accrual: trial {TRIAL} stopped recruiting", subjects[0]])
    assert any("is eligible" in s for s in subjects)
    trial_mail = next(m for _, m in inbox.messages if "stopped recruiting" in m["Subject"])
    assert (
        "ACTIVE_NOT_RECRUITING" in trial_mail.get_content() and "target reached" in trial_mail.get_content()
    )


def test_a_site_reaching_its_own_target_is_mailed(mailing: Stack, inbox: Inbox) -> None:
    set_targets(mailing, trial=None, site=1)
    post(mailing, decide(mailing, screening_id="A"), "enroll")
    compose_all(mailing)
    pump_mail(mailing)
    subjects = [m["Subject"] for _, m in inbox.messages]
    assert any(s.endswith(f"stopped recruiting for trial {TRIAL}") for s in subjects)
    assert any(s == f"Accrual: trial {TRIAL} stopped recruiting" for s in subjects)  # its only site


def test_s19_smtp_down_is_retried_then_dead_lettered_and_no_message_holds_health_data(
    mailing: Stack,
) -> None:
    """Scenario 19: nothing listens on the SMTP port; the message is tried on the whole schedule (three
    attempts), then kept as `failed`, the dead letter. Neither its subject nor its body holds the
    applicant's canary screening id or observations."""
    decide(mailing, screening_id="SMTP-CANARY-19", wagner_grade=5, abi=0.37)
    compose_all(mailing)
    pump_mail(mailing)
    assert statuses(mailing) == [("failed", 3)]
    with mailing.db.sessions() as session:
        [dead] = session.scalars(select(EmailMessage)).all()
        assert "Error" in str(dead.last_error)
    for leak in ("SMTP-CANARY", "wagner", "Wagner", "0.37", "ulcer", "1955"):
        assert leak not in dead.subject and leak not in dead.body


def test_a_permanent_refusal_fails_at_once(mailing: Stack, inbox: Inbox) -> None:
    inbox.refuse = True
    decide(mailing, screening_id="A")
    compose_all(mailing)
    pump_mail(mailing)
    assert statuses(mailing) == [("failed", 1)] and inbox.messages == []


def test_with_no_smtp_host_mail_is_off(stack: Stack) -> None:
    with stack.db.transaction() as session:
        create_token(session, Role.COORDINATOR, [stack.site_id], email=COORDINATOR_MAIL)
    decide(stack, screening_id="A")
    assert compose_all(stack) == 0
    with stack.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(EmailMessage)) == 0


@pytest.mark.parametrize(
    ("role", "email", "sponsor"),
    [
        (Role.COORDINATOR, "not-an-address", None),
        (Role.COORDINATOR, "two@@example.org", None),
        (Role.COORDINATOR, "a@b.org, c@d.org", None),
        (Role.SPONSOR, "sponsor at example.org", "Allife"),
    ],
)
def test_token_emails_are_checked(sqlite_stack: Stack, role: Role, email: str, sponsor: str | None) -> None:
    sites = [sqlite_stack.site_id] if role is Role.COORDINATOR else []
    with pytest.raises(TokenError), sqlite_stack.db.transaction() as session:
        create_token(session, role, sites, sponsor, email=email)


def test_the_relay_queues_no_mail_task_while_mail_is_off(tmp_path: Path) -> None:
    from workers.celery_app import make_celery
    from workers.relay import consumers

    off = make_celery(make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}"))
    on = make_celery(make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", smtp_host="127.0.0.1"))
    assert [c.name for c in consumers(off, "application.screened")] == ["webhooks.fan_out"]
    assert [c.name for c in consumers(on, "application.screened")] == ["mail.compose", "webhooks.fan_out"]
    assert [c.name for c in consumers(off, "site.status_changed")] == ["webhooks.fan_out"]
