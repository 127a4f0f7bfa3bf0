"""Webhook signing, secrets and target checks (services/notifications/); retry timing is test_retry.py.

Pure unit tests: no database, and no network beyond resolving IP literals (which needs no DNS);
host names are answered by a monkeypatched getaddrinfo.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from models.sealing import Keyring, SealingError
from services.notifications.targets import UnsafeTarget, check_target
from services.notifications.webhooks import (
    Response,
    new_secret,
    seal,
    sign,
    unseal,
)

# The Standard Webhooks specification's published test vector.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def reference_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """An independent HMAC-SHA256 over `id.timestamp.body`, keyed with the secret's decoded bytes."""
    key = base64.b64decode(secret[len("whsec_") :])
    content = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


# --- signatures ---------------------------------------------------------------------------------------


def test_sign_reproduces_the_standard_webhooks_spec_vector() -> None:
    signature = sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD.encode())
    assert signature == SPEC_SIGNATURE


def test_standardwebhooks_library_agrees_with_the_spec_vector_and_with_sign() -> None:
    library = Webhook(SPEC_SECRET).sign(
        SPEC_MSG_ID, datetime.fromtimestamp(SPEC_TIMESTAMP, UTC), SPEC_PAYLOAD
    )
    assert library == SPEC_SIGNATURE
    assert library == sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD.encode())


def test_independent_hmac_agrees_with_the_spec_vector() -> None:
    assert reference_signature(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD.encode()) == (
        SPEC_SIGNATURE
    )


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        json.dumps({"type": "application.submitted", "name": "Zoë Ñúñez"}, ensure_ascii=False).encode(),
        b'{"data":{"n":1}}\n',
    ],
    ids=["empty-object", "non-ascii-utf8", "trailing-newline"],
)
def test_sign_matches_independent_hmac_and_library_for_a_fresh_secret(body: bytes) -> None:
    secret = new_secret()
    timestamp = 1_700_000_123
    ours = sign(secret, "evt_01ABC", timestamp, body)
    assert ours == reference_signature(secret, "evt_01ABC", timestamp, body)
    assert ours == Webhook(secret).sign("evt_01ABC", datetime.fromtimestamp(timestamp, UTC), body.decode())


def test_sign_depends_on_every_signed_part() -> None:
    secret = new_secret()
    base = sign(secret, "evt_1", 1_700_000_000, b"{}")
    assert sign(secret, "evt_2", 1_700_000_000, b"{}") != base
    assert sign(secret, "evt_1", 1_700_000_001, b"{}") != base
    assert sign(secret, "evt_1", 1_700_000_000, b"{ }") != base
    assert sign(new_secret(), "evt_1", 1_700_000_000, b"{}") != base


def fresh_headers(secret: str, message_id: str, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def test_standardwebhooks_verify_accepts_a_freshly_signed_delivery() -> None:
    secret = new_secret()
    body = json.dumps({"type": "trial.status_changed", "data": {"status": "recruiting"}}).encode()
    verified = Webhook(secret).verify(body, fresh_headers(secret, "evt_fresh", body))
    assert verified == {"type": "trial.status_changed", "data": {"status": "recruiting"}}


def test_standardwebhooks_verify_rejects_a_tampered_body() -> None:
    secret = new_secret()
    headers = fresh_headers(secret, "evt_fresh", b'{"n":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"n":2}', headers)


def test_standardwebhooks_verify_rejects_a_signature_made_with_another_secret() -> None:
    headers = fresh_headers(new_secret(), "evt_fresh", b'{"n":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(b'{"n":1}', headers)


# --- secrets -----------------------------------------------------------------------------------------


def test_new_secret_is_whsec_prefix_and_base64_of_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(key) == 32
    assert base64.b64encode(key).decode() == secret.removeprefix("whsec_")


def test_new_secret_differs_each_time() -> None:
    assert len({new_secret() for _ in range(20)}) == 20


KEYRING = Keyring.parse(Keyring.new_entry("k1"))
SECRET_KEY = b"service signing key"  # opens only secrets sealed before revision 0012


def test_seal_then_unseal_returns_the_secret() -> None:
    secret = new_secret()
    assert unseal(KEYRING, "whk_1", seal(KEYRING, "whk_1", secret), SECRET_KEY) == secret


def test_seal_uses_a_fresh_nonce_so_two_sealings_differ_yet_both_unseal() -> None:
    secret = new_secret()
    first, second = seal(KEYRING, "whk_1", secret), seal(KEYRING, "whk_1", secret)
    assert first != second
    assert [unseal(KEYRING, "whk_1", sealed, SECRET_KEY) for sealed in (first, second)] == [secret, secret]


def test_unseal_with_another_data_key_raises() -> None:
    sealed = seal(KEYRING, "whk_1", new_secret())
    with pytest.raises(SealingError, match="whk_1"):
        unseal(Keyring.parse(Keyring.new_entry("k1")), "whk_1", sealed, SECRET_KEY)


def test_unseal_of_tampered_sealed_text_raises() -> None:
    prefix, encoded = seal(KEYRING, "whk_1", new_secret()).rsplit(":", 1)
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 0x01
    with pytest.raises(SealingError, match="whk_1"):
        unseal(KEYRING, "whk_1", f"{prefix}:{base64.b64encode(bytes(raw)).decode()}", SECRET_KEY)


def test_sealed_text_does_not_contain_the_secret() -> None:
    secret = new_secret()
    sealed = seal(KEYRING, "whk_1", secret)
    encoded_key = secret.removeprefix("whsec_")
    payload = base64.b64decode(sealed.rsplit(":", 1)[1])
    assert secret not in sealed
    assert encoded_key not in sealed
    assert encoded_key.encode() not in payload
    assert base64.b64decode(encoded_key) not in payload


# --- target checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/", "only https://"),
        ("http://10.0.0.1/", "only https://"),
        ("http://93.184.216.34/hook", "only https://.*ACCRUAL_WEBHOOK_ALLOW_PRIVATE=true"),
        ("https://169.254.169.254/latest/meta-data/", "non-public address"),
        ("https://10.0.0.1/", "non-public address"),
        ("https://127.0.0.1/", "non-public address"),
        ("https://[::1]/", "non-public address"),
        ("https://[::ffff:10.0.0.1]/", "non-public address"),
        ("https://100.64.0.1/", "non-public address"),
        ("https://192.168.1.1/", "non-public address"),
        ("https://172.16.0.1/", "non-public address"),
        ("https://224.0.0.1/", "non-public address"),
        ("https://0.0.0.0/", "non-public address"),
        ("https://2130706433/", "non-public address"),  # 127.0.0.1 spelt as one decimal number
        ("https://user:pw@93.184.216.34/", "credentials"),
        ("https://user@93.184.216.34/", "credentials"),
        ("https://:pw@93.184.216.34/", "credentials"),
        ("ftp://x", "must be https://host"),
        ("https:///no-host", "must be https://host"),
        ("not a url", "must be https://host"),
        ("", "must be https://host"),
        ("https://[::1/", "malformed"),
        ("https://93.184.216.34:99999/", "malformed"),
        ("https://93.184.216.34:port/", "malformed"),
    ],
)
def test_check_target_refuses_unsafe_url_when_private_not_allowed(url: str, reason: str) -> None:
    with pytest.raises(UnsafeTarget, match=reason):
        check_target(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["https://user:pw@127.0.0.1/", "ftp://127.0.0.1/", "https://[::1/"],
)
def test_check_target_refuses_credentials_schemes_and_malformed_urls_even_when_private_allowed(
    url: str,
) -> None:
    with pytest.raises(UnsafeTarget):
        check_target(url, allow_private=True)


def test_check_target_accepts_https_to_a_public_ip_literal() -> None:
    check_target("https://93.184.216.34/hook", allow_private=False)


def test_check_target_accepts_plain_http_to_loopback_when_private_allowed() -> None:
    check_target("http://127.0.0.1:8080/x", allow_private=True)


def fake_resolver(answers: list[str], calls: list[tuple[Any, ...]]) -> Any:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        calls.append((host, port))
        result: list[tuple[Any, ...]] = []
        for address in answers:
            if ":" in address:
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return result

    return getaddrinfo


def test_check_target_refuses_a_name_with_one_private_answer_among_public_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        "services.notifications.targets.socket.getaddrinfo",
        fake_resolver(["93.184.216.34", "10.1.2.3", "2606:2800:220:1:248:1893:25c8:1946"], calls),
    )
    with pytest.raises(UnsafeTarget, match="non-public address") as refused:
        check_target("https://hooks.example.com/in", allow_private=False)
    # No address is named: a subscriber must not learn how internal names resolve.
    assert "10.1.2.3" not in str(refused.value)
    assert "93.184.216.34" not in str(refused.value)
    assert calls == [("hooks.example.com", 443)]


def test_check_target_refuses_a_name_resolving_to_a_private_ipv6_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "services.notifications.targets.socket.getaddrinfo",
        fake_resolver(["93.184.216.34", "fe80::1%eth0"], []),
    )
    with pytest.raises(UnsafeTarget, match="non-public address") as refused:
        check_target("https://hooks.example.com/in", allow_private=False)
    assert "fe80" not in str(refused.value)


def test_check_target_accepts_a_name_whose_answers_are_all_public_and_resolves_its_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        "services.notifications.targets.socket.getaddrinfo",
        fake_resolver(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"], calls),
    )
    check_target("https://hooks.example.com:8443/in", allow_private=False)
    assert calls == [("hooks.example.com", 8443)]


@pytest.mark.parametrize(
    ("answer", "allowed"),
    [("::ffff:93.184.216.34", True), ("::ffff:192.168.0.9", False), ("::ffff:224.0.0.1", False)],
)
def test_check_target_judges_an_ipv4_mapped_answer_by_its_ipv4_address(
    monkeypatch: pytest.MonkeyPatch, answer: str, allowed: bool
) -> None:
    monkeypatch.setattr("services.notifications.targets.socket.getaddrinfo", fake_resolver([answer], []))
    if allowed:
        check_target("https://hooks.example.com/in", allow_private=False)
    else:
        with pytest.raises(UnsafeTarget, match="non-public address"):
            check_target("https://hooks.example.com/in", allow_private=False)


def test_check_target_accepts_an_ipv4_mapped_literal_of_a_public_address() -> None:
    check_target("https://[::ffff:93.184.216.34]/hook", allow_private=False)


def test_check_target_does_not_resolve_names_when_private_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        "services.notifications.targets.socket.getaddrinfo", fake_resolver(["10.0.0.1"], calls)
    )
    check_target("https://internal.example/in", allow_private=True)
    assert calls == []


def test_check_target_refuses_an_unresolvable_name_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    def unresolvable(*args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr("services.notifications.targets.socket.getaddrinfo", unresolvable)
    with pytest.raises(UnsafeTarget, match=r"the host 'nowhere\.invalid' cannot be resolved"):
        check_target("https://nowhere.invalid/hook", allow_private=False)


# --- responses --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_code", "succeeded"),
    [
        (200, True),
        (204, True),
        (299, True),
        (199, False),
        (300, False),
        (302, False),
        (410, False),
        (500, False),
        (None, False),
    ],
)
def test_response_succeeded_only_for_2xx(status_code: int | None, succeeded: bool) -> None:
    assert Response(status_code, latency_ms=1.0).succeeded is succeeded
