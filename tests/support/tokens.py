"""API tokens a test makes beside the stack's admin and coordinator."""

from __future__ import annotations

from models import Role
from services.tokens import create_token
from tests.support.stack import Stack

# NCT06359912's lead sponsor, spelled in lower case: sponsors are matched case-insensitively.
TRIAL_SPONSOR = "allife medical science and technology co., ltd."


def token_for(stack: Stack, role: Role, sponsor: str | None = None) -> str:
    """A new token of `role` (for `sponsor`, when the role is a sponsor's)."""
    with stack.db.transaction() as session:
        return create_token(session, role, sponsor=sponsor)


def sponsor_token(stack: Stack, sponsor: str = TRIAL_SPONSOR) -> str:
    """A new token of `sponsor`, by default the seeded trial's."""
    return token_for(stack, Role.SPONSOR, sponsor)
