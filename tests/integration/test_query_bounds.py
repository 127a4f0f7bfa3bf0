"""Every integer query parameter of the API is bounded: a huge or meaningless value is a 422 naming
the field, never a 500 from a database that cannot hold the number."""

from __future__ import annotations

import pytest

from tests.support.http import assert_problem, auth
from tests.support.stack import Stack

HUGE = "99999999999999999999999"  # beyond a 64-bit integer
BIGINT_MAX = 2**63 - 1

# (path, the integer parameter, a value that has no meaning for it)
INTEGER_PARAMETERS = [
    ("/api/v1/audit", "after", "-1"),
    ("/api/v1/audit", "limit", "0"),
    ("/api/v1/applications", "limit", "0"),
    ("/api/v1/events", "limit", "0"),
    ("/api/v1/webhooks/wh_none/deliveries", "limit", "0"),
]


@pytest.mark.parametrize(("path", "parameter", "meaningless"), INTEGER_PARAMETERS)
@pytest.mark.parametrize("kind", ["huge", "negative", "meaningless"])
def test_an_out_of_range_integer_parameter_is_a_422_naming_it(
    stack: Stack, path: str, parameter: str, meaningless: str, kind: str
) -> None:
    value = {"huge": HUGE, "negative": "-" + HUGE, "meaningless": meaningless}[kind]
    response = stack.client.get(path, query_string={parameter: value}, headers=auth(stack.admin))
    assert_problem(response, 422, parameter)
    assert HUGE not in response.get_data(as_text=True)  # the rejected value is not echoed back


def test_the_largest_audit_position_is_valid_and_past_the_end(stack: Stack) -> None:
    response = stack.client.get(
        "/api/v1/audit", query_string={"after": BIGINT_MAX}, headers=auth(stack.admin)
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"items": [], "next_after": BIGINT_MAX}
    beyond = stack.client.get(
        "/api/v1/audit", query_string={"after": BIGINT_MAX + 1}, headers=auth(stack.admin)
    )
    assert_problem(beyond, 422, "after")


def test_a_numeric_cursor_is_refused_as_a_client_error(stack: Stack) -> None:
    # Cursors are opaque signed strings, never integers: a number in their place is a bad cursor (400).
    for path, parameter in (("/api/v1/events", "after"), ("/api/v1/applications", "cursor")):
        response = stack.client.get(path, query_string={parameter: HUGE}, headers=auth(stack.admin))
        assert_problem(response, 400)
