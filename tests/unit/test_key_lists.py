"""The one parser of key lists (models.key_lists), for ACCRUAL_DATA_KEYS and ACCRUAL_AUDIT_KEYS: the rules
both follow, what each keeps of its own, and `accrual keys new`, whose entry either list may receive."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from models.audit import AuditKeys
from models.sealing import Keyring
from services.cli import main


def key(size: int = 32, fill: bytes = b"k") -> str:
    return base64.b64encode(fill * size).decode()


DATA = pytest.param(Keyring.parse, "ACCRUAL_DATA_KEYS", id="data")
AUDIT = pytest.param(AuditKeys.parse, "ACCRUAL_AUDIT_KEYS", id="audit")
Parse = Callable[[str], Any]


# --- what both lists follow -------------------------------------------------------------------------


@pytest.mark.parametrize(("parse", "setting"), [DATA, AUDIT])
def test_the_first_entry_is_current_and_blanks_and_empty_entries_are_ignored(
    parse: Parse, setting: str
) -> None:
    parsed = parse(f" ,k2:{key(fill=b'2')} , k1:{key(fill=b'1')},, ")
    assert parsed.current == "k2"
    assert parsed.keys == {"k2": b"2" * 32, "k1": b"1" * 32}


@pytest.mark.parametrize(("parse", "setting"), [DATA, AUDIT])
@pytest.mark.parametrize("text", ["", " , ,", "   "])
def test_a_list_without_an_entry_is_refused_naming_the_setting(parse: Parse, setting: str, text: str) -> None:
    with pytest.raises(ValueError, match=f"^{setting}: no key given$"):
        parse(text)


@pytest.mark.parametrize(("parse", "setting"), [DATA, AUDIT])
@pytest.mark.parametrize("key_id", ["k-1", "k_1", "k 1", "", "k1;"])
def test_an_id_other_than_letters_and_digits_is_refused(parse: Parse, setting: str, key_id: str) -> None:
    with pytest.raises(ValueError, match=f"^{setting}: entry 2 needs an id of letters and digits"):
        parse(f"ok:{key()},{key_id}:{key()}")


@pytest.mark.parametrize(("parse", "setting"), [DATA, AUDIT])
def test_a_key_given_without_its_id_is_refused_without_being_echoed(parse: Parse, setting: str) -> None:
    bare = base64.b64encode(b"secretkeymaterial" * 2).decode().rstrip("=")  # letters and digits only
    assert bare.isalnum()
    for text in (bare, f"{bare}=", f":{bare}"):
        with pytest.raises(ValueError, match=f"^{setting}: entry 1 ") as refused:
            parse(text)
        assert bare not in str(refused.value)


@pytest.mark.parametrize(("parse", "setting"), [DATA, AUDIT])
@pytest.mark.parametrize("encoded", ["not base64!", key()[:-1], key() + "#"])
def test_a_key_that_is_not_strict_base64_is_refused_naming_its_id_only(
    parse: Parse, setting: str, encoded: str
) -> None:
    with pytest.raises(ValueError, match=f"^{setting}: key 'k9' must be ") as refused:
        parse(f"k9:{encoded}")
    assert encoded not in str(refused.value)


# --- what each list keeps of its own ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33, 64])
def test_a_data_key_is_exactly_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match=r"^ACCRUAL_DATA_KEYS: key 'k1' must be exactly 32 bytes of base64$"):
        Keyring.parse(f"k1:{key(size)}")


@pytest.mark.parametrize("size", [32, 33, 64])
def test_an_audit_key_is_32_bytes_or_more(size: int) -> None:
    assert AuditKeys.parse(f"a1:{key(size)}").keys == {"a1": b"k" * size}


@pytest.mark.parametrize("size", [0, 16, 31])
def test_a_shorter_audit_key_is_refused(size: int) -> None:
    with pytest.raises(
        ValueError, match=r"^ACCRUAL_AUDIT_KEYS: key 'a1' must be at least 32 bytes of base64$"
    ):
        AuditKeys.parse(f"a1:{key(size)}")


def test_a_data_key_id_may_be_longer_than_16_characters_an_audit_key_id_may_not() -> None:
    long_id = "datakey2026january"  # 18: values sealed under such an id name it in their text
    assert Keyring.parse(f"{long_id}:{key()}").current == long_id
    assert AuditKeys.parse(f"{'a' * 16}:{key()}").current == "a" * 16
    with pytest.raises(ValueError, match=r"^ACCRUAL_AUDIT_KEYS: entry 1 needs .* at most 16 characters"):
        AuditKeys.parse(f"{long_id}:{key()}")


def test_a_repeated_data_key_id_keeps_its_later_key_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    first, later = key(fill=b"1"), key(fill=b"2")
    with caplog.at_level(logging.WARNING, "models.key_lists"):
        keyring = Keyring.parse(f"k1:{first},k0:{key()},k1:{later}")
    assert keyring.current == "k1" and keyring.keys["k1"] == b"2" * 32  # what values were sealed with
    [warning] = caplog.records
    assert "ACCRUAL_DATA_KEYS" in warning.getMessage() and "'k1'" in warning.getMessage()
    assert first not in caplog.text and later not in caplog.text


def test_a_repeated_audit_key_id_keeps_its_first_key_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    first, later = key(fill=b"1"), key(fill=b"2")
    with caplog.at_level(logging.WARNING, "models.key_lists"):
        keys = AuditKeys.parse(f"a1:{first},a1:{later}")
    assert keys.current == "a1" and keys.keys == {"a1": b"1" * 32}  # what entries were chained with
    [warning] = caplog.records
    assert "ACCRUAL_AUDIT_KEYS" in warning.getMessage() and "'a1'" in warning.getMessage()
    assert first not in caplog.text and later not in caplog.text


@pytest.mark.parametrize(("parse", "setting"), [DATA, AUDIT])
def test_an_entry_repeated_with_the_same_key_is_one_key_without_a_warning(
    parse: Parse, setting: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "models.key_lists"):
        parsed = parse(f"k1:{key()},k1:{key()}")
    assert parsed.keys == {"k1": b"k" * 32} and caplog.records == []


# --- `accrual keys new` ----------------------------------------------------------------------------


def test_keys_new_prints_an_entry_both_lists_accept() -> None:
    printed = CliRunner().invoke(main, ["keys", "new", "k2026"])
    assert printed.exit_code == 0, printed.output
    entry = printed.output.strip()
    assert Keyring.parse(entry).current == AuditKeys.parse(entry).current == "k2026"
    another = CliRunner().invoke(main, ["keys", "new", "k2026"]).output
    assert Keyring.parse(entry).keys != Keyring.parse(another).keys  # a fresh random key each time


@pytest.mark.parametrize("key_id", ["k-2", "datakey2026january", ""])
def test_keys_new_refuses_an_id_either_list_would_refuse(key_id: str) -> None:
    refused = CliRunner().invoke(main, ["keys", "new", key_id])
    assert refused.exit_code == 2 and "letters and digits only, at most 16" in refused.output
