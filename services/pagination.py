"""Opaque, signed keyset cursors: clients cannot forge them or carry one to another caller."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from services.errors import InvalidCursor


def encode_cursor(position: dict[str, Any], scope: str, key: bytes) -> str:
    payload = json.dumps({"p": position, "s": scope}, separators=(",", ":"), sort_keys=True).encode()
    signature = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(payload + signature).decode().rstrip("=")


def decode_cursor(cursor: str, scope: str, key: bytes) -> dict[str, Any]:
    """The position a cursor stands for; 400 problem if it is garbled, tampered with or not the caller's."""
    bad = InvalidCursor("cursor is not one this service gave to this caller for this list")
    if len(cursor) > 1000:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except ValueError:
        raise bad from None
    payload, signature = raw[:-16], raw[-16:]
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    if len(raw) <= 16 or not hmac.compare_digest(signature, expected):
        raise bad
    decoded = json.loads(payload)
    if decoded.get("s") != scope:
        raise bad
    position: dict[str, Any] = decoded["p"]
    return position
