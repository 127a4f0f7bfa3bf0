"""The README's ten-line webhook receiver works as printed: it accepts a genuine delivery once, and
rejects a forged, stale or malformed one with 400, never 500 (scenario 34 of RELIABILITY.md §7: the
verification helper Accrual ships to sponsors is this example)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from services.notifications.webhooks import new_secret, sign

README = Path(__file__).parents[2] / "README.md"


def receiver_app(secret: str) -> Any:
    text = README.read_text()
    block = re.search(r"A short receiver.*?```python\n(.*?)```", text, re.S)
    assert block, "the README's receiver example is missing"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 16
    namespace: dict[str, Any] = {"__name__": "readme_receiver"}
    exec(compile(code.replace("whsec_...", secret), "README.md", "exec"), namespace)  # noqa: S102
    return namespace["app"]


def delivery(secret: str, body: bytes, message_id: str = "evt_1", at: int | None = None) -> dict[str, str]:
    timestamp = at or int(time.time())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "content-type": "application/json",
    }


BODY = b'{"id":"evt_1","type":"application.screened","trial_id":"NCT06359912","data":{}}'


def test_s34_a_genuine_delivery_is_accepted_and_a_replayed_webhook_id_acted_on_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = new_secret()
    client = receiver_app(secret).test_client()
    assert client.post("/hooks/accrual", data=BODY, headers=delivery(secret, BODY)).status_code == 204
    assert client.post("/hooks/accrual", data=BODY, headers=delivery(secret, BODY)).status_code == 204
    assert capsys.readouterr().out.count("application.screened") == 1


def _without(name: str) -> Any:
    return lambda h, b: ({k: v for k, v in h.items() if k != name}, b)


SIX_MINUTES = 6 * 60
TAMPERED = {
    "no webhook-id": _without("webhook-id"),
    "no webhook-timestamp": _without("webhook-timestamp"),
    "no webhook-signature": _without("webhook-signature"),
    "entry without a comma": lambda h, b: ({**h, "webhook-signature": "garbage"}, b),  # a ValueError
    "bad base64": lambda h, b: ({**h, "webhook-signature": "v1,%%%not*base64%%%"}, b),
    "a wrong signature": lambda h, b: ({**h, "webhook-signature": "v1,AAAA"}, b),
    "an unknown scheme": lambda h, b: (
        {**h, "webhook-signature": h["webhook-signature"].replace("v1,", "v9,")},
        b,
    ),
    "timestamp not a number": lambda h, b: ({**h, "webhook-timestamp": "soon"}, b),
    "tampered body": lambda h, b: (h, b.replace(b"screened", b"enrolled")),
}


@pytest.mark.parametrize("tamper", TAMPERED.values(), ids=TAMPERED.keys())
def test_s34_a_forged_or_malformed_delivery_is_rejected_with_400_never_500(tamper: Any) -> None:
    secret = new_secret()
    client = receiver_app(secret).test_client()
    headers, body = tamper(delivery(secret, BODY), BODY)
    assert client.post("/hooks/accrual", data=body, headers=headers).status_code == 400


@pytest.mark.parametrize(
    "skew", [-SIX_MINUTES, SIX_MINUTES, -3600], ids=["6 min old", "6 min ahead", "1 h old"]
)
def test_s34_a_delivery_signed_outside_the_5_minute_window_is_rejected(skew: int) -> None:
    """Signed correctly, but at a time more than 5 minutes from the receiver's clock, either way."""
    secret = new_secret()
    client = receiver_app(secret).test_client()
    headers = delivery(secret, BODY, at=int(time.time()) + skew)
    assert client.post("/hooks/accrual", data=BODY, headers=headers).status_code == 400


def test_s34_during_a_secret_rotation_a_delivery_signed_with_both_secrets_is_accepted_by_either() -> None:
    old, new = new_secret(), new_secret()
    timestamp = int(time.time())
    both = " ".join(sign(secret, "evt_1", timestamp, BODY) for secret in (new, old))
    headers = {**delivery(new, BODY, at=timestamp), "webhook-signature": both}
    for secret in (old, new):
        client = receiver_app(secret).test_client()
        assert client.post("/hooks/accrual", data=BODY, headers=headers).status_code == 204


def test_a_delivery_signed_with_another_secret_is_rejected() -> None:
    client = receiver_app(new_secret()).test_client()
    assert client.post("/hooks/accrual", data=BODY, headers=delivery(new_secret(), BODY)).status_code == 400
