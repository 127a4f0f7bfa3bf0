"""What the access matrix is made of: a route, the outcome each role may expect, and ids to fill in.

The expectations come from the contract's table of roles (docs/API.md), not from the code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.support.access.world import ROLES, World
from tests.support.stack import Stack

ALLOWED = "allowed"  # 2xx, or a domain 4xx that proves the role and scope checks passed
FORBIDDEN = 403
HIDDEN = 404
Outcome = str | int

PARAMETER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# Ids of each kind that exist nowhere: a hidden resource must read exactly as one of these.
MISSING_IDS = {"application_id": "app_" + "0" * 20, "trial_id": "NCT00000000"}


def fill(rule: str, values: dict[str, str]) -> str:
    """The rule's path with each <parameter> replaced by its value."""
    return PARAMETER.sub(lambda m: values[m.group(1)], rule)


def protected_routes(stack: Stack) -> list[tuple[str, str]]:
    """(method, rule) of every /api/v1 route but the public ones."""
    found = []
    for rule in stack.app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and not rule.rule.startswith("/api/v1/public/"):
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((method, rule.rule))
    return sorted(found)


def normalised_detail(response: Any, *ids: str) -> str:
    """The problem's detail with each of `ids` replaced by a placeholder, to compare two refusals."""
    detail: str = response.get_json()["detail"]
    for value in ids:
        detail = detail.replace(value, "<id>")
    return detail


Params = dict[str, str]


@dataclass(frozen=True)
class Route:
    """One protected route: what each role may expect, and how to make, check and guard a case."""

    method: str
    rule: str
    expected: dict[str, Outcome]
    statuses: tuple[int, ...] = (200,)
    query: str = ""
    prepare: Callable[[World], Params] | None = None  # fresh ids for a case that changes state
    body: Callable[[World, str, Params], Any] | None = None  # the JSON body a role sends
    snapshot: Callable[[World, Params], Any] | None = None  # state a refused call must leave alone
    check: Callable[[World, str, Any, Params], None] | None = None  # on an allowed answer
    hides_like_missing: bool = False  # a 404 must read as for an id that does not exist

    @property
    def label(self) -> str:
        """The route as the test ids name it."""
        return f"{self.method} {self.rule.removeprefix('/api/v1')}"


def roles(
    admin: Outcome, coord_in: Outcome, coord_out: Outcome, sponsor_in: Outcome, sponsor_out: Outcome
) -> dict[str, Outcome]:
    """The outcome of each role, in the order of ROLES."""
    return dict(zip(ROLES, (admin, coord_in, coord_out, sponsor_in, sponsor_out), strict=True))


ANY_ROLE = roles(ALLOWED, ALLOWED, ALLOWED, ALLOWED, ALLOWED)
ADMIN_ONLY = roles(ALLOWED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN)
# "coordinator of its site, admin": another site's application is hidden (404), a sponsor is refused.
APPLICATION_READ = roles(ALLOWED, ALLOWED, HIDDEN, FORBIDDEN, FORBIDDEN)
# "coordinator of its site": admins and sponsors are refused, another site's application is hidden.
APPLICATION_ACTION = roles(FORBIDDEN, ALLOWED, HIDDEN, FORBIDDEN, FORBIDDEN)
SUBMIT = roles(FORBIDDEN, ALLOWED, FORBIDDEN, FORBIDDEN, FORBIDDEN)
COORDINATORS = roles(FORBIDDEN, ALLOWED, ALLOWED, FORBIDDEN, FORBIDDEN)
LISTS_OF_OWN_APPLICATIONS = roles(ALLOWED, ALLOWED, ALLOWED, FORBIDDEN, FORBIDDEN)
# "sponsor of the trial, admin": another sponsor's trial report is hidden.
SPONSORS_TRIAL = roles(ALLOWED, FORBIDDEN, FORBIDDEN, ALLOWED, HIDDEN)
# "sponsor (own trials), admin": each sponsor gets its own slice.
SPONSOR_OR_ADMIN = roles(ALLOWED, FORBIDDEN, FORBIDDEN, ALLOWED, ALLOWED)
# "owner, admin": another organisation's webhook is hidden.
WEBHOOK_OWNER = roles(ALLOWED, FORBIDDEN, FORBIDDEN, ALLOWED, HIDDEN)
# v1.1 "trials visible to the caller: all for an admin, a sponsor's own trials, the trials of a
# coordinator's sites (anything else: 404, as if absent)"; both coordinators have a site in TRIAL.
TRIAL_READ = roles(ALLOWED, ALLOWED, ALLOWED, ALLOWED, HIDDEN)
