"""/metrics: the operational figures an operator alerts on, read from the database and the broker."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support.applicants import eligible_applicant
from tests.support.screening import decide
from tests.support.stack import Stack, make_settings


def scrape(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = stack.client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    figures = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            figures[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return figures


def test_undecided_applications_and_relay_lag_show_until_the_decision(stack: Stack) -> None:
    stack.submit(eligible_applicant("WAITING"))
    before = scrape(stack)
    assert before[("accrual_applications_undecided", ())] == 1
    assert before[("accrual_outbox_pending_events", ())] == 1
    assert before[("accrual_relay_lag_seconds", ())] > 0
    assert before[("accrual_oldest_undecided_age_seconds", ())] > 0
    decide(stack, screening_id="DECIDED")
    after = scrape(stack)
    assert after[("accrual_applications_undecided", ())] == 1  # the first is still waiting
    assert ("accrual_decision_latency_seconds", (("quantile", "0.5"),)) in after
    assert after[("accrual_broker_up", ())] == 1
    assert after[("accrual_queue_depth", (("queue", "screening"),))] == 0  # nothing published yet


def test_metrics_name_no_trial_site_or_applicant(stack: Stack) -> None:
    stack.submit(eligible_applicant("METRICS-CANARY"))
    text = stack.client.get("/metrics").get_data(as_text=True)
    assert "METRICS-CANARY" not in text and "NCT" not in text and "site_" not in text and "app_" not in text


def test_an_unreachable_broker_reads_as_down(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", "redis://127.0.0.1:9/0")
    stack = Stack(settings)
    try:
        assert scrape(stack)[("accrual_broker_up", ())] == 0
    finally:
        stack.close()


def test_queue_depth_is_read_from_redis(pg_url: str, redis_url: str, tmp_path: Path) -> None:
    import redis as redis_client

    from workers.celery_app import make_celery

    stack = Stack(make_settings(tmp_path, pg_url, redis_url))
    try:
        app = make_celery(stack.settings)
        for _ in range(3):
            app.send_task("screening.run", args=["app_nothing", "evt_nothing"], queue="screening")
        assert scrape(stack)[("accrual_queue_depth", (("queue", "screening"),))] == 3
    finally:
        redis_client.Redis.from_url(redis_url).flushdb()
        stack.close()
