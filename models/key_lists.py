"""Key lists from configuration, `id:base64key,id:base64key,...` with the first id current: the one parser
of ACCRUAL_DATA_KEYS (models.sealing) and ACCRUAL_AUDIT_KEYS (models.audit).

Both lists follow the same rules: entries separated by commas, blanks around them ignored; an id of
letters and digits; the key in strict base64; at least one entry. Each list's `KeyListRules` sets only
what follows from how its keys are used, and each accepts what it accepted before the two shared a
parser:
- the key's size: AES-256 takes exactly 32 bytes; an HMAC key takes 32 or more, and longer audit keys
  were always accepted.
- the id's length: an audit entry keeps its key's id in a 16-character column; a data key's id travels
  in the sealed text, which has no such limit, and longer ids were always accepted (values sealed under
  one must stay readable).
- an id listed twice with different keys: which entry's key counts is the one it always was (the
  later for data keys: values were sealed with it; the first for audit keys: entries were chained with
  it), and the process warns, since one of the two keys is then never used.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

NEW_KEY_BYTES = 32


@dataclass(frozen=True)
class KeyListRules:
    """What one setting's key list allows beyond the rules every list follows."""

    setting: str  # the variable, named in every refusal
    key_bytes: int  # a key's size
    longer_keys: bool  # whether a key may also be longer than key_bytes
    max_id_length: int | None  # None: no limit
    repeated_id_keeps: Literal["first", "last"]

    def id_refusal(self, position: int) -> str:
        """Why the entry at `position` (from 1) was refused for its id, which is not repeated: an entry
        with no id or no colon would otherwise echo its key."""
        length = "" if self.max_id_length is None else f" of at most {self.max_id_length} characters"
        return f"{self.setting}: entry {position} needs an id of letters and digits{length}, then ':'"

    def key_refusal(self, key_id: str) -> str:
        size = f"{'at least' if self.longer_keys else 'exactly'} {self.key_bytes} bytes"
        return f"{self.setting}: key {key_id!r} must be {size} of base64"

    def accepts_id(self, key_id: str) -> bool:
        return key_id.isalnum() and (self.max_id_length is None or len(key_id) <= self.max_id_length)

    def accepts_key(self, key: bytes) -> bool:
        return len(key) == self.key_bytes or (self.longer_keys and len(key) > self.key_bytes)


def parse_key_list(text: str, rules: KeyListRules) -> tuple[dict[str, bytes], str]:
    """The keys of `text` by id, and the current (first) id; ValueError naming the first bad entry."""
    keys: dict[str, bytes] = {}
    entries = filter(None, (part.strip() for part in text.split(",")))
    for position, entry in enumerate(entries, start=1):
        key_id, colon, encoded = entry.partition(":")
        if not (colon and rules.accepts_id(key_id)):
            raise ValueError(rules.id_refusal(position))
        try:
            key = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError(rules.key_refusal(key_id)) from None
        if not rules.accepts_key(key):
            raise ValueError(rules.key_refusal(key_id))
        if key_id in keys and keys[key_id] != key:
            log.warning(
                "%s lists key id %r twice with different keys; the %s entry's key is used",
                rules.setting,
                key_id,
                rules.repeated_id_keeps,
            )
        if key_id not in keys or rules.repeated_id_keeps == "last":
            keys[key_id] = key
    if not keys:
        raise ValueError(f"{rules.setting}: no key given")
    return keys, next(iter(keys))


def new_key_entry(key_id: str) -> str:
    """A new `id:base64key` entry with a random 32-byte key (a size every key list accepts)."""
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(NEW_KEY_BYTES)).decode()}"
