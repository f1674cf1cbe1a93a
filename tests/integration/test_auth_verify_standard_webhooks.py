"""verify_hmac with scheme standard-webhooks in front of an app, the calls signed by the
independent standardwebhooks library; replicas sharing one redis-server refuse each other's
replays and refuse everything (503) while it is down; `sidecar check` names a bad secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from standardwebhooks.webhooks import Webhook

from sidecar.testing import FakeUpstream, RedisServer, running_sidecar

SIDECAR = str(Path(sys.executable).with_name("sidecar"))


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


OLD, NEW = new_secret(), new_secret()


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WH_OLD", OLD)
    monkeypatch.setenv("WH_NEW", NEW)


@pytest.fixture
async def app() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    """A private redis-server for this test (the test fails if it cannot start)."""
    with RedisServer() as server:
        yield server


def receiver(app_url: str, **verify: Any) -> dict[str, Any]:
    """The app's sidecar: /hooks/... forwarded unchanged, only when signed."""
    policy = {"scheme": "standard-webhooks", "secrets": [{"env": "WH_OLD"}, {"env": "WH_NEW"}]}
    return {
        "upstreams": {"app": {"url": app_url, "verify_hmac": {**policy, **verify}}},
        "routes": [{"name": "hooks", "match": {"path_prefix": "/hooks"}, "upstream": "app"}],
    }


def signed(
    body: bytes, msg_id: str, *, secret: str = OLD, at: float | None = None
) -> dict[str, str]:
    """Headers a Standard Webhooks sender sends, made by the standardwebhooks library."""
    stamp = datetime.fromtimestamp(int(time.time() if at is None else at), UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, stamp, body),
    }


async def test_signed_webhooks_reach_the_app_once_and_the_rest_get_401(app: FakeUpstream) -> None:
    """Either rotated secret passes; a replayed id (even re-signed), a stale, forged or
    unsigned call gets 401 with its reason, counted by reason; the app sees the good ones."""
    body = b'{"type": "invoice.paid"}'
    async with running_sidecar(receiver(app.url)) as s, httpx.AsyncClient() as c:
        url = f"http://127.0.0.1:{s.http_port}/hooks/billing"
        first = signed(body, "msg_1")
        ok = [
            await c.post(url, content=body, headers=first),
            await c.post(url, content=body, headers=signed(body, "msg_2", secret=NEW)),
        ]
        refused = {
            "replay": await c.post(url, content=body, headers=first),
            "replay re-signed": await c.post(
                url, content=body, headers=signed(body, "msg_1", at=time.time() + 1)
            ),
            "stale": await c.post(
                url, content=body, headers=signed(body, "msg_3", at=time.time() - 600)
            ),
            "mismatch": await c.post(
                url, content=body, headers=signed(body, "msg_4", secret=new_secret())
            ),
            "missing": await c.post(url, content=body),
        }
        metrics = (await c.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    assert [r.status_code for r in ok] == [200, 200]
    for why, r in refused.items():
        assert (r.status_code, r.headers["x-sidecar-error"]) == (401, "signature_invalid"), why
        assert OLD not in r.text and NEW not in r.text
    assert "webhook-id was already accepted" in refused["replay re-signed"].text
    assert "outside the accepted window" in refused["stale"].text
    assert [r.body for r in app.requests] == [body, body]
    assert app.requests[0].headers["webhook-id"] == "msg_1"
    for reason, n in (("replay", 2), ("stale", 1), ("mismatch", 1), ("missing", 1)):
        line = (
            f'sidecar_signatures_rejected_total{{reason="{reason}",route="hooks",upstream="app"}}'
        )
        assert f"{line} {n}.0" in metrics, reason


def sidecar_signed(body: bytes, target: str) -> dict[str, str]:
    """scheme sidecar: the documented string-to-sign, keyed by the secret's text."""
    stamp = str(int(time.time()))
    message = f"{stamp}\nPOST\n{target}\n{hashlib.sha256(body).hexdigest()}".encode()
    signature = hmac.new(OLD.encode(), message, hashlib.sha256).hexdigest()
    return {"x-signature": f"sha256={signature}", "x-timestamp": stamp}


@pytest.mark.parametrize("scheme", ["standard-webhooks", "sidecar"])
async def test_replicas_sharing_redis_refuse_each_others_replays(
    app: FakeUpstream, redis: RedisServer, scheme: str
) -> None:
    """With replay_backend, a call one sidecar accepted is a replay for another sharing the
    Redis; with Redis down a new call gets 503 replay_check_unavailable (fail closed), never
    the app."""
    body = b'{"type": "invoice.paid"}'
    config = receiver(app.url, scheme=scheme, replay_backend="shared")
    if scheme == "sidecar":
        config["upstreams"]["app"]["verify_hmac"]["secrets"] = [{"env": "WH_OLD"}]
    config["ratelimit_backends"] = {"shared": {"type": "redis", "url": redis.url, "timeout": "1s"}}

    def sign(msg_id: str) -> dict[str, str]:
        if scheme == "sidecar":
            return sidecar_signed(body + msg_id.encode(), "/hooks/in")
        return signed(body, msg_id)

    def content(msg_id: str) -> bytes:
        return body + msg_id.encode() if scheme == "sidecar" else body

    async with (
        running_sidecar(config) as one,
        running_sidecar(config) as two,
        httpx.AsyncClient(timeout=10) as c,
    ):
        headers = sign("msg_shared")
        first = await c.post(
            f"http://127.0.0.1:{one.http_port}/hooks/in",
            content=content("msg_shared"),
            headers=headers,
        )
        replay = await c.post(
            f"http://127.0.0.1:{two.http_port}/hooks/in",
            content=content("msg_shared"),
            headers=headers,
        )
        other = await c.post(
            f"http://127.0.0.1:{two.http_port}/hooks/in",
            content=content("msg_other"),
            headers=sign("msg_other"),
        )
        keys = redis.command("KEYS", "*")
        ttl = redis.command("PTTL", keys.split(b"\r\n")[2].decode())
        redis.kill()
        down = await c.post(
            f"http://127.0.0.1:{one.http_port}/hooks/in",
            content=content("msg_new"),
            headers=sign("msg_new"),
        )
    assert (first.status_code, other.status_code) == (200, 200)
    assert (replay.status_code, replay.headers["x-sidecar-error"]) == (401, "signature_invalid")
    assert "already accepted" in replay.text
    assert keys.count(f"sidecar:rl:replay:app:{scheme}:".encode()) == 2
    assert 0 < int(ttl[1:].strip()) <= 300_000  # expires when the window ends
    assert (down.status_code, down.headers["x-sidecar-error"]) == (
        503,
        "replay_check_unavailable",
    )
    assert len(app.requests) == 2


def test_sidecar_check_names_a_secret_that_is_no_whsec_secret(tmp_path: Path) -> None:
    """`sidecar check` exits 2 naming the file, key path and reason, never the value."""
    config = receiver("http://127.0.0.1:9")
    (tmp_path / "sidecar.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "WH_OLD": OLD, "WH_NEW": "plaintext-password"}
    done = subprocess.run(  # noqa: S603 - our own CLI
        [SIDECAR, "check", "-c", "sidecar.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "sidecar.yaml: upstreams.app.verify_hmac.secrets[1]: the secret {env: WH_NEW}" in out
    assert "plaintext-password" not in out and OLD not in out
