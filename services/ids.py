"""Identifiers: server-made opaque ones (a short type prefix and a ULID, so ids sort by creation time),
and readable slugs made from names (arms, sponsors)."""

import re

from ulid import ULID


def new_id(prefix: str) -> str:
    return f"{prefix}_{str(ULID()).lower()}"


def slug(name: str, max_length: int = 40) -> str:
    """A short, stable id from a name: its lower-case words joined by `-`, cut at a word boundary
    within `max_length` ("Mesenchymal stem cells" -> `mesenchymal-stem-cells`); "" for a name
    without a letter or digit."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    made = ""
    for word in words:
        longer = f"{made}-{word}" if made else word
        if len(longer) > max_length:
            break
        made = longer
    return made or (words[0][:max_length] if words else "")
