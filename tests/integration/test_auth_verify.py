"""verify_hmac in front of an app: signed webhooks pass, forged, stale and replayed ones do not."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sidecar.testing import FakeUpstream, running_sidecar

SECRET = "whsec-shared-8c1d"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)


@pytest.fixture
async def app() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


def receiver(app_url: str) -> dict[str, Any]:
    """The app's sidecar: /hooks/... forwarded unchanged, only when signed."""
    return {
        "upstreams": {
            "app": {
                "url": app_url,
                "verify_hmac": {"secret": {"env": "WEBHOOK_SECRET"}, "max_skew": "2m"},
            }
        },
        "routes": [{"name": "hooks", "match": {"path_prefix": "/hooks"}, "upstream": "app"}],
    }


def sign(
    body: bytes, target: str, *, secret: str = SECRET, ts: int | None = None
) -> dict[str, str]:
    """Headers a webhook sender computes, written from the documented string-to-sign."""
    stamp = str(int(time.time()) if ts is None else ts)
    message = f"{stamp}\nPOST\n{target}\n{hashlib.sha256(body).hexdigest()}".encode()
    signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {"X-Signature": f"sha256={signature}", "X-Timestamp": stamp}


async def test_signed_calls_pass_and_the_rest_get_401(app: FakeUpstream) -> None:
    """Correct signature: the app gets the call. Wrong secret, stale timestamp, replay: 401."""
    body = b'{"event": "invoice.paid"}'
    async with running_sidecar(receiver(app.url)) as s, httpx.AsyncClient() as c:
        url = f"http://127.0.0.1:{s.http_port}/hooks/billing?attempt=1"
        target = "/hooks/billing?attempt=1"
        good = sign(body, target)
        assert (await c.post(url, content=body, headers=good)).status_code == 200
        refused = {
            "wrong secret": await c.post(
                url, content=body, headers=sign(body, target, secret="not-it")
            ),
            "stale": await c.post(
                url, content=body, headers=sign(body, target, ts=int(time.time()) - 600)
            ),
            "replay": await c.post(url, content=body, headers=good),
            "unsigned": await c.post(url, content=body),
        }
        metrics = (await c.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    for why, r in refused.items():
        assert r.status_code == 401, why
        assert r.headers["x-sidecar-error"] == "signature_invalid", why
        assert SECRET not in r.text
    assert "outside the accepted window" in refused["stale"].text
    assert "already accepted" in refused["replay"].text
    assert len(app.requests) == 1 and app.requests[0].body == body
    for reason in ("mismatch", "stale", "replay", "missing"):
        line = (
            f'sidecar_signatures_rejected_total{{reason="{reason}",route="hooks",upstream="app"}}'
        )
        assert f"{line} 1.0" in metrics, reason


async def test_a_sidecar_signing_calls_is_accepted_by_a_sidecar_verifying_them(
    app: FakeUpstream,
) -> None:
    """auth: {type: hmac} on one side and verify_hmac on the other interoperate."""
    async with running_sidecar(receiver(app.url)) as b:
        sender = {
            "upstreams": {
                "partner": {
                    "url": f"http://127.0.0.1:{b.http_port}",
                    "auth": {"type": "hmac", "secret": {"env": "WEBHOOK_SECRET"}},
                }
            }
        }
        async with running_sidecar(sender) as a, httpx.AsyncClient() as c:
            url = f"http://127.0.0.1:{a.http_port}/partner/hooks/ship?id=3"
            for body in (b'{"n": 1}', b'{"n": 2}', b""):
                r = await c.post(url, content=body)
                assert r.status_code == 200, r.text
    assert [r.body for r in app.requests] == [b'{"n": 1}', b'{"n": 2}', b""]
    assert all(r.path_qs == "/hooks/ship?id=3" for r in app.requests)
