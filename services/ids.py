"""Server-made opaque identifiers: a short type prefix and a ULID, so ids sort by creation time."""

from ulid import ULID


def new_id(prefix: str) -> str:
    return f"{prefix}_{str(ULID()).lower()}"
