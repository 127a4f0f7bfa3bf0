"""Clinical data sealed at rest: AES-GCM under a key from configuration, so that a dump of the
database alone reveals no observation.

Each value is stored as `v1:<key id>:<base64(nonce + ciphertext)>`; the key id lets old values be
read after a new key becomes current, and `accrual keys rotate` re-seals them under the current key.
The keyring rides on the engine's dialect, which every bind and result passes through.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

PREFIX = "v1"
ASSOCIATED = b"accrual observations"


class SealingError(RuntimeError):
    """A sealed value that cannot be opened (unknown key id, tampered text) or no key to seal with."""


@dataclass(frozen=True)
class Keyring:
    """Data keys by id; `current` seals, every key opens what it sealed."""

    keys: dict[str, bytes]
    current: str

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """`id:base64key,id:base64key,...`; the first is current. Keys are 32 bytes (AES-256)."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for entry in filter(None, (part.strip() for part in text.split(","))):
            key_id, _, encoded = entry.partition(":")
            try:
                key = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise ValueError(f"data key {key_id!r} is not base64") from None
            if not key_id.isalnum() or len(key) != 32:
                raise ValueError(f"data key {key_id!r} must be an alphanumeric id and 32 bytes of base64")
            keys[key_id] = key
            order.append(key_id)
        if not order:
            raise ValueError("no data key given")
        return cls(keys, order[0])

    @staticmethod
    def new_entry(key_id: str) -> str:
        return f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode()}"

    def seal(self, value: Any) -> str:
        nonce = secrets.token_bytes(12)
        plain = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plain, ASSOCIATED)
        return f"{PREFIX}:{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, text: str) -> Any:
        try:
            prefix, key_id, encoded = text.split(":", 2)
            raw = base64.b64decode(encoded)
            key = self.keys[key_id]
        except (ValueError, KeyError):
            raise SealingError("a sealed value names no key this keyring holds") from None
        if prefix != PREFIX:
            raise SealingError(f"unknown sealing format {prefix!r}")
        try:
            return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], ASSOCIATED))
        except Exception:
            raise SealingError("a sealed value does not open: altered, or sealed under another key") from None

    def sealed_with(self, text: str) -> str:
        return text.split(":", 2)[1]


def keyring_of(dialect: Dialect) -> Keyring:
    keyring: Keyring | None = getattr(dialect, "accrual_keyring", None)
    if keyring is None:
        raise SealingError("this database handle has no data keyring (ACCRUAL_DATA_KEYS)")
    return keyring


class SealedJSON(TypeDecorator[Any]):
    """A JSON value stored sealed (see the module's docstring)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else keyring_of(dialect).seal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else keyring_of(dialect).open(value)
