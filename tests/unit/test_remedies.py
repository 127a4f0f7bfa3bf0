"""services.eligibility.remedies against the seed criteria of NCT06359912: when waiting cures an
exclusion (eligible_from), when a finding must be repeated (renew), and when neither helps."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.applications.explanations import DATED
from services.eligibility.remedies import NONE, Remedies, remedies
from services.schemas.observations import Applicant
from services.trials.criteria import bundled_document, compile_document
from tests.support.applicants import eligible_applicant

COMPILED = compile_document(bundled_document("NCT06359912.criteria.yaml"))
SUBMITTED = date(2026, 10, 2)


def observations(**changes: Any) -> dict[str, Any]:
    return Applicant.model_validate(eligible_applicant(**changes)).observations()


def remedies_for(**changes: Any) -> Remedies:
    return remedies(COMPILED, observations(**changes), SUBMITTED, DATED)


def test_an_eligible_applicant_needs_no_remedy() -> None:
    assert COMPILED.evaluate(observations(), SUBMITTED).decision == "eligible"
    assert remedies_for() == NONE


def test_an_acute_episode_too_recent_passes_from_the_day_its_window_ends() -> None:
    # E: acute limb ischemia within the past 14 days of the reference date (consent 2026-10-01).
    found = remedies_for(acute_limb_ischemia=True, acute_limb_ischemia_date="2026-09-25")
    assert found.renew == ()
    assert found.eligible_from is not None
    day_before = found.eligible_from.toordinal() - 1
    on = observations(
        acute_limb_ischemia=True,
        acute_limb_ischemia_date="2026-09-25",
        consent_date=found.eligible_from.isoformat(),
    )
    assert COMPILED.evaluate(on, SUBMITTED).decision != "ineligible"
    before = {**on, "consent_date": date.fromordinal(day_before).isoformat()}
    assert COMPILED.evaluate(before, SUBMITTED).decision == "ineligible"  # the earliest such date


def test_rest_pain_too_short_at_consent_is_cured_by_waiting() -> None:
    found = remedies_for(rest_pain_onset_date="2026-09-25", severe_claudication=False, abi=0.7)
    assert found.eligible_from == date(2026, 10, 10)


def test_imaging_too_old_at_consent_must_be_repeated_and_waiting_cures_nothing() -> None:
    found = remedies_for(infrainguinal_imaging_date="2026-06-01")
    assert found == Remedies(None, ("infrainguinal_imaging_date",))


def test_an_exclusion_no_date_cures_has_no_remedy() -> None:
    assert remedies_for(hiv_positive=True) == NONE


def test_a_window_cure_that_another_exclusion_blocks_gives_no_date() -> None:
    found = remedies_for(acute_limb_ischemia=True, acute_limb_ischemia_date="2026-09-25", hiv_positive=True)
    assert found.eligible_from is None


def test_no_date_is_offered_past_an_age_limit() -> None:
    # 80 at consent (the limit, inclusive), 81 from 2026-10-05: the acute episode's window ends later.
    found = remedies_for(
        birth_date="1945-10-05", acute_limb_ischemia=True, acute_limb_ischemia_date="2026-09-28"
    )
    assert found.eligible_from is None
    younger = remedies_for(
        birth_date="1950-10-05", acute_limb_ischemia=True, acute_limb_ischemia_date="2026-09-28"
    )
    assert younger.eligible_from is not None
