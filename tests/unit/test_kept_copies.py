"""services.catalog.Kept: copies valid for one version, never older than the version they are kept at."""

from __future__ import annotations

from collections.abc import Callable

from services.catalog import Kept


def loader(value: str | None, calls: list[str]) -> Callable[[], str | None]:
    def load() -> str | None:
        calls.append("load")
        return value

    return load


def test_a_copy_is_used_while_its_version_holds_and_read_again_when_it_moves() -> None:
    kept: Kept[str, str] = Kept(10)
    calls: list[str] = []
    assert kept.get(1, "a", loader("first", calls)) == "first"
    assert kept.get(1, "a", loader("unused", calls)) == "first"
    assert kept.get(2, "a", loader("second", calls)) == "second"
    assert calls == ["load", "load"]


def test_what_was_read_at_a_superseded_version_is_used_once_not_kept() -> None:
    kept: Kept[str, str] = Kept(10)
    calls: list[str] = []
    kept.get(5, "a", loader("current", calls))
    assert kept.get(4, "b", loader("late", calls)) == "late"
    assert kept.get(5, "b", loader("fresh", calls)) == "fresh"
    assert kept.get(5, "a", loader("unused", calls)) == "current"
    assert calls == ["load", "load", "load"]


def test_nothing_found_is_not_kept() -> None:
    kept: Kept[str, str] = Kept(10)
    calls: list[str] = []
    assert kept.get(1, "a", loader(None, calls)) is None
    assert kept.get(1, "a", loader("now there", calls)) == "now there"
    assert calls == ["load", "load"]


def test_a_full_store_starts_afresh_rather_than_grow() -> None:
    kept: Kept[int, str] = Kept(3)
    calls: list[str] = []
    for key in range(4):
        kept.get(1, key, loader(f"copy {key}", calls))
    assert kept.get(1, 3, loader("unused", calls)) == "copy 3"  # the newest is kept
    assert kept.get(1, 0, loader("reloaded", calls)) == "reloaded"
    assert calls == ["load"] * 5
