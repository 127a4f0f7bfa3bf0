"""Domain errors: what a use case refuses, said in the domain's words.

Use cases raise these and know nothing of HTTP. The HTTP edge maps each class to its RFC 9457 problem
in one table (services/api/errors.py); the `accrual` command prints the detail. An error may name the
fields it is about, as paths into what the caller sent (`("applicant", "abi")`), and carry facts the
caller needs (`context`: the existing application of a duplicate, the status an application is in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Path = str | Sequence[str | int]


@dataclass(frozen=True)
class FieldError:
    """One field the error is about: its path (dotted string or parts) and what is wrong with it."""

    path: Path
    detail: str

    def parts(self) -> tuple[str | int, ...]:
        return tuple(self.path.split(".")) if isinstance(self.path, str) else tuple(self.path)


class DomainError(Exception):
    """A refusal of a use case; `detail` is the sentence shown to the caller."""

    def __init__(self, detail: str, *, fields: Sequence[FieldError] = (), **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = list(fields)
        self.context = context


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know that it does."""


class NotAllowed(DomainError):
    """The caller is known and sees the thing, but may not do this to it."""


class InvalidInput(DomainError):
    """What the caller sent is wrong, whatever the state of the system; names the fields."""

    @classmethod
    def of(cls, field: Path, detail: str) -> InvalidInput:
        """One bad field, its name leading the sentence."""
        error = FieldError(field, detail)
        return cls(f"{'.'.join(map(str, error.parts()))}: {detail}", fields=[error])


class InvalidCursor(DomainError):
    """A page cursor this service did not give to this caller for this list."""


class CursorExpired(DomainError):
    """A feed cursor from before the retention purge: events after it are no longer kept."""


class EventExpired(DomainError):
    """The event is past its retention period and no longer kept: it cannot be sent again."""


class InvalidIdempotencyKey(DomainError):
    """An Idempotency-Key that is not 1-255 printable ASCII characters."""


class IdempotencyKeyReused(DomainError):
    """An Idempotency-Key used before with a different request."""


class Conflict(DomainError):
    """The request is well formed but the current state of the thing does not allow it."""


class AlreadySubmitted(Conflict):
    """The applicant was submitted to this trial at this site before; `context` names that application."""


class NotRecruiting(Conflict):
    """The trial or site accepts no applications now."""


class TargetReached(Conflict):
    """The enrolment target of the trial or site is reached: no place is left."""


class TargetBelowEnrolled(Conflict):
    """A new enrolment target below what the trial or site has already enrolled."""


class StaleVersion(DomainError):
    """The caller's copy is out of date (If-Match): read it again."""


class PreconditionRequired(DomainError):
    """A change that must name the version it was made against (If-Match) and did not."""


class InvalidCriteria(DomainError):
    """A criteria document that does not compile."""
