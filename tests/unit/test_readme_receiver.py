"""The README's ten-line webhook receiver works as printed: it accepts a genuine delivery once, and
rejects a forged, stale or malformed one with 400, never 500."""

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


def test_a_genuine_delivery_is_accepted_and_acted_on_once(capsys: pytest.CaptureFixture[str]) -> None:
    secret = new_secret()
    client = receiver_app(secret).test_client()
    assert client.post("/hooks/accrual", data=BODY, headers=delivery(secret, BODY)).status_code == 204
    assert client.post("/hooks/accrual", data=BODY, headers=delivery(secret, BODY)).status_code == 204
    assert capsys.readouterr().out.count("application.screened") == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: {**h, "webhook-signature": "garbage"},  # no comma: the library raises ValueError
        lambda h: {**h, "webhook-signature": "v1,AAAA"},
        lambda h: {**h, "webhook-timestamp": str(int(time.time()) - 3600)},
        lambda h: {k: v for k, v in h.items() if k != "webhook-id"},
    ],
)
def test_a_forged_stale_or_malformed_delivery_is_rejected_with_400(tamper: Any) -> None:
    secret = new_secret()
    client = receiver_app(secret).test_client()
    assert client.post("/hooks/accrual", data=BODY, headers=tamper(delivery(secret, BODY))).status_code == 400


def test_a_delivery_signed_with_another_secret_is_rejected() -> None:
    client = receiver_app(new_secret()).test_client()
    assert client.post("/hooks/accrual", data=BODY, headers=delivery(new_secret(), BODY)).status_code == 400
