"""Bearer tokens: made once, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ApiToken, Role, Site, Trial
from models.base import utcnow
from services.ids import new_id, slug

EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")
SPONSOR_SLUG_LENGTH = 60
TOKEN_PREFIX = "acr_"  # noqa: S105 - a prefix that makes leaked tokens recognisable, not a secret


class TokenError(ValueError):
    """A token request that cannot be granted (unknown site, missing scope)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: the token's id (also the audit identity) and its scope."""

    token_id: str
    role: Role
    site_ids: frozenset[str]
    sponsor: str | None
    unblinded: bool = False  # created --unblinded

    @classmethod
    def of(cls, row: ApiToken) -> Caller:
        return cls(row.id, Role(row.role), frozenset(row.site_ids), row.sponsor, bool(row.unblinded))

    @property
    def sees_arms(self) -> bool:
        """Whether this caller may see the arm a participant was allocated to: admins, and tokens
        created --unblinded (an unblinded statistician, a pharmacist preparing the treatment)."""
        return self.role is Role.ADMIN or self.unblinded

    def can_use_site(self, site_id: str) -> bool:
        return self.role is Role.ADMIN or site_id in self.site_ids

    def speaks_for(self, sponsor: str | None) -> bool:
        """A sponsor token stands for its organisation, however the name's letters are cased.

        Compared in Python (casefold), never with SQL lower(), which on SQLite folds ASCII only."""
        return (
            self.role is Role.SPONSOR
            and self.sponsor is not None
            and sponsor is not None
            and self.sponsor.casefold() == sponsor.casefold()
        )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    role: Role,
    site_ids: Sequence[str] = (),
    sponsor: str | None = None,
    name: str | None = None,
    email: str | None = None,
    expires_at: datetime | None = None,
    unblinded: bool = False,
) -> str:
    """Store a new token's hash and return the token itself; it cannot be shown again."""
    if role is Role.COORDINATOR and not site_ids:
        raise TokenError("a coordinator token needs at least one --site")
    if role is Role.SPONSOR and not sponsor:
        raise TokenError("a sponsor token needs --sponsor")
    if email is not None and not EMAIL.fullmatch(email):
        raise TokenError(f"not an e-mail address: {email!r}")
    unknown = set(site_ids) - set(session.scalars(select(Site.site_id).where(Site.site_id.in_(site_ids))))
    if unknown:
        raise TokenError(f"no such site: {', '.join(sorted(unknown))}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            id=new_id("tok"),
            token_hash=_hash(token),
            role=role.value,
            name=name,
            sponsor=sponsor,
            site_ids=sorted(set(site_ids)),
            email=email,
            expires_at=expires_at,
            unblinded=unblinded,
        )
    )
    return token


def known_sponsors(session: Session) -> dict[str, str]:
    """Every sponsor a trial names, by its slug: {slug: the exact name as the registry gives it}."""
    names = session.scalars(select(Trial.sponsor).distinct().order_by(Trial.sponsor))
    return {slug(name, SPONSOR_SLUG_LENGTH): name for name in names}


def resolve_sponsor(session: Session, given: str) -> str:
    """The exact sponsor name that `given` means: its slug (`allife-medical-science-and-technology`) or
    the name itself, in any case. TokenError listing the known sponsors when no trial has it: a token
    for a sponsor without trials would see nothing, silently."""
    known = known_sponsors(session)
    wanted = given.strip()
    if wanted in known:
        return known[wanted]
    for name in known.values():
        if name.casefold() == wanted.casefold():
            return name
    listed = "; ".join(f"{key} ({name})" for key, name in known.items()) or "none: import a trial first"
    raise TokenError(f"no trial names the sponsor {wanted!r}; known sponsors, by id (name): {listed}")


def authenticate(session: Session, token: str) -> Caller | None:
    """The caller a presented token stands for, or None if it is unknown, expired or revoked."""
    return _caller(_row_of(session, token))


def token_hash(token: str) -> str | None:
    """How a token is stored; None for what cannot be one of ours."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return _hash(token)


def token_row(session: Session, hashed: str) -> ApiToken | None:
    """The token stored with hash `hashed`, whatever its state."""
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == hashed))


def _row_of(session: Session, token: str) -> ApiToken | None:
    hashed = token_hash(token)
    return None if hashed is None else token_row(session, hashed)


def start_session(session: Session, token: str) -> tuple[Caller, int] | None:
    """Dashboard sign-in: the token's caller and the session generation to stamp the new session
    with; None if the token is unknown, expired or revoked."""
    row = _row_of(session, token)
    found = _caller(row)
    if row is None or found is None:
        return None
    return found, row.session_generation


def caller_of_session(session: Session, token_id: str, generation: int) -> Caller | None:
    """The caller of a dashboard session; None once the token is revoked or expired, or once its
    sessions were ended by a sign-out (the generation has moved on)."""
    row = session.get(ApiToken, token_id)
    if row is None or row.session_generation != generation:
        return None
    return _caller(row)


def end_sessions(session: Session, token_id: str, generation: int) -> None:
    """Sign-out: end every dashboard session of the token; a session that had already ended (an older
    generation) ends nothing more, so a replayed old cookie cannot sign the token out again."""
    row = session.get(ApiToken, token_id, with_for_update=True)
    if row is not None and row.session_generation == generation:
        row.session_generation = generation + 1


def _caller(row: ApiToken | None) -> Caller | None:
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    return Caller.of(row)


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token ever made, newest first; the rows hold hashes only, never a token."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)))


def revoke_token(session: Session, token_id: str) -> ApiToken:
    """Revoke a token at once: its next request is refused, and its dashboard sessions end."""
    row = session.get(ApiToken, token_id, with_for_update=True)
    if row is None:
        raise TokenError(f"no such token: {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
