"""Clinical data sealed at rest: AES-GCM under a key from configuration, so that a dump of the
database alone reveals no observation, and bound to its row, so that someone who can write to the
database cannot move one applicant's sealed data into another applicant's row.

A value is stored as `v2:<key id>:<base64(nonce + ciphertext)>`, its associated data naming the table,
the column and the row's id (`accrual|applications|observations|<id>`): text copied into another row
does not open there. A TypeDecorator sees values but not rows, so the sealing happens at the mapper
(`seal_per_row`): sealed when the unit of work writes the row, opened when a query loads it. Code that
reads or writes the column with Core seals and opens with the row's binding itself.

`v1:<key id>:...` is the format before revision 0011, with one constant associated data: still
opened, so that rows written before the upgrade (or by a process not yet restarted) stay readable;
revision 0011 and `accrual keys rotate` re-seal them as v2. The key id lets old values be read after
a new key becomes current, and `accrual keys rotate` re-seals them under the current key.
The keyring rides on the engine's dialect, which every bind, result and flush passes through.

Webhook secrets are sealed with the same keyring in the same v2 format, bound to their subscription's
row (services.notifications.webhooks seals and opens them itself: they stay sealed in memory until a
delivery is signed). Before revision 0012 they were bare base64 under a key derived from
ACCRUAL_SECRET_KEY, with one constant associated data: see `open_with_secret_key`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text, event, inspect
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Mapper, QueryContext
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import TypeDecorator

from models.key_lists import KeyListRules, new_key_entry, parse_key_list

BOUND = "v2"  # associated data names the row and column: a value opens only where it was sealed
UNBOUND = "v1"  # before revision 0011: one constant associated data, so a value opened in any row
UNBOUND_ASSOCIATED = b"accrual observations"
# AES-256 takes exactly 32 bytes; ids of any length were always accepted and travel in the sealed text.
DATA_KEYS = KeyListRules(
    "ACCRUAL_DATA_KEYS", key_bytes=32, longer_keys=False, max_id_length=None, repeated_id_keeps="last"
)


class SealingError(RuntimeError):
    """A sealed value that cannot be opened (unknown key id, tampered text, another row's value) or no
    key to seal with."""


def binding(table: str, column: str, row_id: str) -> bytes:
    """The associated data that ties a sealed value to one column of one row."""
    return f"accrual|{table}|{column}|{row_id}".encode()


@dataclass(frozen=True)
class Keyring:
    """Data keys by id; `current` seals, every key opens what it sealed."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """`id:base64key,id:base64key,...` (ACCRUAL_DATA_KEYS); the first is current (models.key_lists)."""
        keys, current = parse_key_list(text, DATA_KEYS)
        return cls(keys, current)

    new_entry = staticmethod(new_key_entry)

    @property
    def current_prefix(self) -> str:
        """How every value sealed now begins; anything else is due for `accrual keys rotate`."""
        return f"{BOUND}:{self.current}:"

    def seal(self, value: Any, bound_to: bytes) -> str:
        """`value` as JSON, sealed under the current key; it opens only with the same `bound_to`."""
        return self._seal(BOUND, value, bound_to)

    def seal_unbound(self, value: Any) -> str:
        """The v1 format, for the migrations that leave a schema whose code reads v1 only."""
        return self._seal(UNBOUND, value, UNBOUND_ASSOCIATED)

    def _seal(self, prefix: str, value: Any, associated: bytes) -> str:
        nonce = secrets.token_bytes(12)
        plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plain, associated)
        return f"{prefix}:{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, text: str, bound_to: bytes) -> Any:
        """The value sealed in `text`, if it was sealed for `bound_to` (or is a v1 value)."""
        try:
            prefix, key_id, encoded = text.split(":", 2)
            raw = base64.b64decode(encoded)
            key = self.keys[key_id]
        except (ValueError, KeyError):
            raise SealingError("a sealed value names no key this keyring holds") from None
        if prefix not in (BOUND, UNBOUND):
            raise SealingError(f"unknown sealing format {prefix!r}")
        associated = bound_to if prefix == BOUND else UNBOUND_ASSOCIATED
        try:
            return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], associated))
        except Exception:
            raise SealingError(
                "a sealed value does not open: altered, moved from another row, or sealed under another key"
            ) from None

    def sealed_with(self, text: str) -> str:
        """The id of the key `text` was sealed under."""
        return text.split(":", 2)[1]


# --- webhook secrets before revision 0012 ---------------------------------------------------------
# Bare base64 (no prefix, so no ":") under a key derived from ACCRUAL_SECRET_KEY, with one constant
# associated data: that key could not be rotated, and such text opened in any subscription's row. Still
# opened, so that secrets written before the upgrade (or by a process not yet restarted) keep signing;
# revision 0012 and `accrual keys rotate` re-seal them with the keyring, bound to their row.
SECRET_KEY_DERIVATION = b"accrual webhook secrets"
SECRET_KEY_ASSOCIATED = b"webhook"


def sealed_with_secret_key(text: str) -> bool:
    """Whether `text` is a webhook secret in the format before revision 0012."""
    return ":" not in text


def _secret_key_cipher(secret_key: bytes) -> AESGCM:
    return AESGCM(hmac.new(secret_key, SECRET_KEY_DERIVATION, hashlib.sha256).digest())


def open_with_secret_key(text: str, secret_key: bytes) -> str:
    """The webhook secret sealed in `text` in the format before revision 0012."""
    try:
        raw = base64.b64decode(text, validate=True)
        return _secret_key_cipher(secret_key).decrypt(raw[:12], raw[12:], SECRET_KEY_ASSOCIATED).decode()
    except (ValueError, InvalidTag):
        raise SealingError(
            "a secret sealed before revision 0012 does not open under ACCRUAL_SECRET_KEY"
        ) from None


def seal_with_secret_key(secret: str, secret_key: bytes) -> str:
    """A webhook secret in the format before revision 0012, for the downgrade to the code that reads it."""
    nonce = secrets.token_bytes(12)
    sealed = _secret_key_cipher(secret_key).encrypt(nonce, secret.encode(), SECRET_KEY_ASSOCIATED)
    return base64.b64encode(nonce + sealed).decode()


def keyring_of(dialect: Dialect) -> Keyring:
    """The keyring `Database` hung on this engine's dialect."""
    keyring: Keyring | None = getattr(dialect, "accrual_keyring", None)
    if keyring is None:
        raise SealingError("this database handle has no data keyring (ACCRUAL_DATA_KEYS)")
    return keyring


class Sealed(dict[str, Any]):
    """A plain value in memory that carries the sealed text its row is written with."""

    __slots__ = ("text",)

    def __init__(self, value: Mapping[str, Any], text: str) -> None:
        super().__init__(value)
        self.text = text


class SealedJSON(TypeDecorator[Any]):
    """The column of a value sealed per row (see the module's docstring): text in SQL.

    Writes take only a `Sealed` value, which the flush hook of `seal_per_row` (or Core code holding the
    row's binding) made: a plain value reaching the database would be unsealed or bound to nothing.
    Reads hand back the sealed text; the load hook opens it with the row's binding.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Sealed):
            raise SealingError(
                "a sealed column takes only values sealed for their row (models.sealing.Sealed)"
            )
        return value.text

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return value


def seal_per_row(cls: type[Any], key: str, row_key: Sequence[str] = ()) -> Callable[[str], bytes]:
    """Keep `cls.<key>` plain in memory and sealed in the database, bound to its row: sealed when the
    unit of work inserts or changes it, opened when a query loads it. Returns the binding of a row id,
    for code that reads or writes the column with Core.

    The row is named by its primary key, or by the attributes `row_key` lists (joined by `/`) when the
    key is only known after the insert (an autoincrement id) but another unique key is known before."""
    mapper: Mapper[Any] = inspect(cls)
    table, column = str(cls.__tablename__), mapper.columns[key].name
    if not row_key:
        [primary_key] = mapper.primary_key
        row_key = (mapper.get_property_by_column(primary_key).key,)

    def bound_to(row_id: str) -> bytes:
        return binding(table, column, row_id)

    def row_id_of(target: Any) -> str | None:
        parts = [getattr(target, name) for name in row_key]
        return None if any(part is None for part in parts) else "/".join(str(part) for part in parts)

    def seal(target: Any, connection: Connection, inserting: bool) -> None:
        value = inspect(target).dict.get(key)
        if value is None or not (inserting or inspect(target).attrs[key].history.has_changes()):
            return  # unchanged: not sealed again, not written
        row_id = row_id_of(target)
        if row_id is None:
            raise SealingError(
                f"{table}.{column} is bound to its row: the row needs its key before the flush"
            )
        # A fresh seal even for a `Sealed` value: it may have been copied from another row.
        sealed = keyring_of(connection.dialect).seal(value, bound_to(str(row_id)))
        setattr(target, key, Sealed(value, sealed))

    def open_loaded(target: Any, context: QueryContext, attrs: Any = None) -> None:
        text = inspect(target).dict.get(key)
        if not isinstance(text, str) or (attrs is not None and key not in attrs):
            return
        row_id = str(row_id_of(target))
        keyring = keyring_of(context.session.get_bind().dialect)
        try:
            set_committed_value(target, key, keyring.open(text, bound_to(row_id)))
        except SealingError as exc:
            # Expired, not left as text: every later access loads and fails again, none sees the text.
            context.session.expire(target, [key])
            raise SealingError(f"{table}.{column} of {row_id}: {exc}") from None  # the id, never a value

    event.listen(cls, "before_insert", lambda _m, connection, target: seal(target, connection, True))
    event.listen(cls, "before_update", lambda _m, connection, target: seal(target, connection, False))
    event.listen(cls, "load", open_loaded, restore_load_context=True)
    event.listen(cls, "refresh", open_loaded, restore_load_context=True)
    return bound_to
