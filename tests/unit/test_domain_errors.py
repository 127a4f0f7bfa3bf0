"""Domain errors and the one table that answers each with its RFC 9457 problem (services.problems)."""

from __future__ import annotations

import pytest

from services import errors
from services.applications.transitions import Action, InvalidTransition
from services.problems import DOMAIN_PROBLEMS, PROBLEM_TYPES, problem_for


def _all_subclasses(cls: type[errors.DomainError]) -> list[type[errors.DomainError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_all_subclasses(sub)]
    return found


EXPECTED = {
    errors.NotFound: (404, "not-found"),
    errors.NotAllowed: (403, "forbidden"),
    errors.InvalidInput: (422, "validation-error"),
    errors.InvalidCursor: (400, "invalid-cursor"),
    errors.CursorExpired: (410, "cursor-expired"),
    errors.EventExpired: (410, "event-expired"),
    errors.InvalidIdempotencyKey: (400, "invalid-idempotency-key"),
    errors.IdempotencyKeyReused: (422, "idempotency-key-reused"),
    errors.Conflict: (409, "invalid-state-transition"),
    errors.AlreadySubmitted: (409, "duplicate-application"),
    errors.NotRecruiting: (409, "not-recruiting"),
    errors.TargetReached: (409, "target-reached"),
    errors.TargetBelowEnrolled: (409, "target-below-enrolled"),
    errors.StaleVersion: (412, "precondition-failed"),
    errors.PreconditionRequired: (428, "precondition-required"),
    errors.InvalidCriteria: (422, "invalid-criteria"),
}


@pytest.mark.parametrize("cls", _all_subclasses(errors.DomainError), ids=lambda cls: cls.__name__)
def test_every_domain_error_is_answered_with_a_catalogued_problem(cls: type[errors.DomainError]) -> None:
    error = InvalidTransition("ineligible", Action.ENROLL) if cls is InvalidTransition else cls("why")
    problem = problem_for(error)
    assert problem.kind in PROBLEM_TYPES
    assert 400 <= problem.status < 500
    assert problem.detail == error.detail


def test_the_table_gives_each_error_the_answer_the_contract_names() -> None:
    assert DOMAIN_PROBLEMS == EXPECTED
    for cls, (status, kind) in EXPECTED.items():
        problem = problem_for(cls("why"))
        assert (problem.status, problem.kind) == (status, kind)


def test_a_subclass_takes_its_nearest_listed_ancestors_problem() -> None:
    problem = problem_for(InvalidTransition("withdrawn", Action.ENROLL))
    assert (problem.status, problem.kind) == (409, "invalid-state-transition")
    assert problem.extensions == {"status_now": "withdrawn"}


def test_named_fields_become_errors_with_a_json_pointer_each() -> None:
    error = errors.InvalidInput(
        "the corrected observations are invalid: applicant.abi",
        fields=[
            errors.FieldError(("applicant", "abi"), "must be at most 3"),
            errors.FieldError("a/b~c", "odd"),
        ],
    )
    body = problem_for(error).body(instance="/api/v1/applications/app_1")
    assert body["errors"] == [
        {"field": "applicant.abi", "pointer": "/applicant/abi", "detail": "must be at most 3"},
        {"field": "a/b~c", "pointer": "/a~1b~0c", "detail": "odd"},
    ]
    assert body["status"] == 422 and body["instance"] == "/api/v1/applications/app_1"


def test_one_bad_field_leads_the_sentence() -> None:
    error = errors.InvalidInput.of("site_id", "no site s1 in trial T1")
    assert error.detail == "site_id: no site s1 in trial T1"
    assert problem_for(error).body()["errors"] == [
        {"field": "site_id", "pointer": "/site_id", "detail": "no site s1 in trial T1"}
    ]


def test_an_error_without_fields_has_no_errors_member() -> None:
    assert "errors" not in problem_for(errors.NotFound("no trial X")).body()


def test_a_duplicate_points_at_the_application_already_submitted() -> None:
    problem = problem_for(errors.AlreadySubmitted("already", existing_application="app_9"))
    assert problem.headers == {"Location": "/api/v1/applications/app_9"}
    body = problem.body()
    assert body["existing_application"] == "app_9"
    assert body["existing_application_url"] == "/api/v1/applications/app_9"


def test_a_duplicate_lost_to_a_concurrent_request_names_no_application() -> None:
    problem = problem_for(errors.AlreadySubmitted("a concurrent request is submitting this applicant; retry"))
    assert problem.headers == {} and "existing_application" not in problem.body()
