"""Inbound verification (`verify_webhook`): the filter alone, then through real sidecars, the
signatures made by the independent standardwebhooks library or by the plugin's own delivery."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sidecar_webhooks
from sidecar_webhooks.inbound import (
    BadSignature,
    Replayed,
    SeenIds,
    Stale,
    Unsigned,
    make_verify_filter,
)
from standardwebhooks.webhooks import Webhook
from webhooks_receiver import Receiver
from webhooks_redis import RedisServer
from webhooks_support import endpoint, hooks_config, run_check

from sidecar import Filter, SidecarError
from sidecar.testing import make_exchange, make_route_context, responder

Factory = Callable[..., Any]


def verify_filter(**policy: Any) -> Filter:
    """The filter of upstream ``test`` with ``plugins.webhooks.verify.test = policy``."""
    config = {"plugins": {"webhooks": {"verify": {"test": policy}}}}
    f = make_verify_filter(make_route_context(config=config, plugins=[sidecar_webhooks]))
    assert f is not None
    return f


def signed(secret: str, msg_id: str, body: bytes, at: float | None = None) -> dict[str, str]:
    """Standard Webhooks headers made by the standardwebhooks library."""
    stamp = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, stamp, body),
    }


async def refused(f: Filter, headers: dict[str, str], body: bytes = b"{}") -> SidecarError:
    with pytest.raises(SidecarError) as caught:
        await f(make_exchange("POST", "/hooks", headers, body), responder(200))
    assert caught.value.status == 401
    return caught.value


async def test_a_signed_webhook_passes_and_its_replay_is_refused(secret_env: Any) -> None:
    """A valid signature reaches the app once; the same webhook-id again is refused."""
    secret = secret_env("IN_WH")
    f = verify_filter(secrets=[{"env": "IN_WH"}])
    headers = signed(secret, "msg_1", b'{"a": 1}')
    answer = await f(make_exchange("POST", "/hooks", headers, b'{"a": 1}'), responder(204))
    assert answer.status == 204
    assert isinstance(await refused(f, headers, b'{"a": 1}'), Replayed)


async def test_every_failed_check_is_a_401_saying_which(secret_env: Any) -> None:
    """Missing headers, a stale timestamp and a wrong signature each get their own 401 code."""
    secret = secret_env("IN_WH")
    f = verify_filter(secrets=[{"env": "IN_WH"}], tolerance="60s")
    assert isinstance(await refused(f, {}), Unsigned)
    # two minutes old: within the library's fixed 5 minutes, outside the configured 60 s
    old = signed(secret, "msg_old", b"{}", at=time.time() - 120)
    assert isinstance(await refused(f, old), Stale)
    assert isinstance(await refused(f, {**old, "webhook-timestamp": "soon"}), Stale)
    forged = signed(secret_env("OTHER_WH"), "msg_x", b"{}")
    assert isinstance(await refused(f, forged), BadSignature)
    tampered = signed(secret, "msg_y", b"{}")
    assert isinstance(await refused(f, tampered, b'{"b": 2}'), BadSignature)
    # a refused call did not use up its id: the genuine one still passes
    good = await f(make_exchange("POST", "/", tampered, b"{}"), responder(200))
    assert good.status == 200


async def test_either_of_two_secrets_verifies_during_rotation(secret_env: Any) -> None:
    """With an old and a new secret configured, a webhook signed by either one passes."""
    old, new = secret_env("OLD_IN"), secret_env("NEW_IN")
    f = verify_filter(secrets=[{"env": "OLD_IN"}, {"env": "NEW_IN"}])
    for n, secret in enumerate((old, new)):
        headers = signed(secret, f"msg_{n}", b"{}")
        assert (await f(make_exchange("POST", "/", headers, b"{}"), responder(200))).status == 200


def test_the_replay_memory_is_bounded_and_forgets_expired_ids() -> None:
    """Seen ids are kept until their window ends, and never more than the capacity."""
    seen = SeenIds(capacity=3)
    for n in range(5):
        seen.remember(f"m{n}", until=100.0, now=0.0)
    assert [seen.seen(f"m{n}", 1.0) for n in range(5)] == [False, False, True, True, True]
    assert not seen.seen("m4", 101.0)
    seen.remember("late", until=300.0, now=200.0)  # the expired ones are dropped first
    assert seen.seen("late", 200.0) and not seen.seen("m2", 200.0)


async def test_a_sidecar_verifies_webhooks_for_its_app(
    sidecar_factory: Factory, fake_upstream: Any, secret_env: Any
) -> None:
    """Through a real sidecar: signed reaches the app, unsigned and replayed get 401s that say
    why, and the app never sees them."""
    secret = secret_env("IN_WH")
    config = {
        "upstreams": {"app": {"url": fake_upstream.url}},
        "plugins": {"webhooks": {"verify": {"app": {"secrets": [{"env": "IN_WH"}]}}}},
    }
    async with sidecar_factory(config, plugins=[sidecar_webhooks]) as s:
        url = f"http://127.0.0.1:{s.http_port}/app/hooks"
        async with httpx.AsyncClient(timeout=10) as client:
            headers = signed(secret, "msg_in", b'{"x": 1}')
            ok = await client.post(url, content=b'{"x": 1}', headers=headers)
            again = await client.post(url, content=b'{"x": 1}', headers=headers)
            bare = await client.post(url, content=b'{"x": 1}')
    assert ok.status_code == 200
    assert (again.status_code, again.headers["x-sidecar-error"]) == (401, "webhook_replayed")
    assert (bare.status_code, bare.headers["x-sidecar-error"]) == (401, "webhook_unsigned")
    assert len(fake_upstream.requests) == 1


async def test_one_sidecar_delivers_what_another_verifies(
    sidecar_factory: Factory,
    receivers: Callable[..., Awaitable[Receiver]],
    secret_env: Any,
    tmp_path: Path,
) -> None:
    """Outbound signing and inbound verification agree: sidecar A's delivery passes sidecar B's
    check and reaches B's app with the event body."""
    app = await receivers()
    secret_env("SHARED_WH")
    receiving = {
        "upstreams": {"app": {"url": app.url.rsplit("/", 1)[0]}},
        "plugins": {"webhooks": {"verify": {"app": {"secrets": [{"env": "SHARED_WH"}]}}}},
    }
    async with sidecar_factory(receiving, plugins=[sidecar_webhooks]) as b:
        target = f"http://127.0.0.1:{b.http_port}/app/hooks"
        sending = hooks_config(tmp_path, {"b": endpoint(target, "SHARED_WH")})
        async with sidecar_factory(sending, plugins=[sidecar_webhooks]) as a:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.post(
                    f"http://127.0.0.1:{a.http_port}/hooks/order.created",
                    content=b'{"order": 7}',
                    headers={"content-type": "application/json"},
                )
            [got] = await app.wait_for(1)
    assert r.status_code == 202
    assert got.headers["webhook-id"] == r.json()["id"]
    assert got.body == b'{"order": 7}'


def test_an_unusable_inbound_secret_is_a_config_problem(tmp_path: Path) -> None:
    """`sidecar check` names plugins.webhooks.verify.<u>.secrets[i] and why, never the value."""
    config = {
        "upstreams": {"app": {"url": "http://127.0.0.1:9"}},
        "plugins": {"webhooks": {"verify": {"app": {"secrets": [{"env": "IN_WH"}]}}}},
    }
    code, out = run_check(tmp_path, config, {"IN_WH": "plaintext-password"})
    assert code == 2
    assert "sidecar.yaml: plugins.webhooks.verify.app.secrets[0]: the secret {env: IN_WH}" in out
    assert "plaintext-password" not in out


async def test_replicas_sharing_redis_refuse_each_others_replays(
    sidecar_factory: Factory, fake_upstream: Any, secret_env: Any
) -> None:
    """With replay_redis, a webhook passed by one sidecar is refused as a replay by another;
    with Redis down a new webhook gets 503 (a replay cannot be ruled out), never the app."""
    secret = secret_env("IN_WH")
    server = RedisServer().start()
    try:
        policy = {"secrets": [{"env": "IN_WH"}], "replay_redis": {"url": server.url}}
        config = {
            "upstreams": {"app": {"url": fake_upstream.url}},
            "plugins": {"webhooks": {"verify": {"app": policy}}},
        }
        async with (
            sidecar_factory(config, plugins=[sidecar_webhooks]) as one,
            sidecar_factory(config, plugins=[sidecar_webhooks]) as two,
            httpx.AsyncClient(timeout=10) as client,
        ):
            headers = signed(secret, "msg_shared", b"{}")
            first = await client.post(
                f"http://127.0.0.1:{one.http_port}/app/in", content=b"{}", headers=headers
            )
            replay = await client.post(
                f"http://127.0.0.1:{two.http_port}/app/in", content=b"{}", headers=headers
            )
            server.stop()
            down = await client.post(
                f"http://127.0.0.1:{two.http_port}/app/in",
                content=b"{}",
                headers=signed(secret, "msg_new", b"{}"),
            )
    finally:
        server.stop()
    assert first.status_code == 200
    assert (replay.status_code, replay.headers["x-sidecar-error"]) == (401, "webhook_replayed")
    assert down.status_code == 503
    assert down.headers["x-sidecar-error"] == "webhook_replay_check_unavailable"
    assert len(fake_upstream.requests) == 1
