"""OAuth2 client credentials against a token endpoint the test runs, through a real sidecar."""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from aiohttp import web

from sidecar.testing import FakeUpstream, async_wait_until, running_sidecar


@dataclass
class Fetch:
    at: float
    client_id: str | None
    client_secret: str | None
    form: dict[str, str]
    basic: bool


@dataclass
class TokenEndpoint:
    """A token endpoint on 127.0.0.1 that counts fetches and can be told to fail or be slow."""

    expires_in: float | None = 60
    #: answer every fetch with this status (an outage) while set
    fail: int | None = None
    delay: float = 0.0
    #: the only client secret accepted (401 invalid_client for another); any when None
    accepted_secret: str | None = None
    fetches: list[Fetch] = field(default_factory=list)
    issued: int = 0
    server: FakeUpstream | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/oauth2/token"

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        header = request.headers.get("Authorization", "")
        basic = header.startswith("Basic ")
        if basic:
            pair = base64.b64decode(header[6:]).decode()
            cid, _, secret = pair.partition(":")
            cid, secret = unquote_plus(cid), unquote_plus(secret)
        else:
            cid, secret = form.get("client_id"), form.get("client_secret")
        loop = asyncio.get_running_loop()
        self.fetches.append(Fetch(loop.time(), cid, secret, form, basic))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            return web.json_response({"error": "temporarily_unavailable"}, status=self.fail)
        if self.accepted_secret is not None and secret != self.accepted_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        self.issued += 1
        answer: dict[str, Any] = {"access_token": f"tok-{self.issued}", "token_type": "Bearer"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return web.json_response(answer)


@pytest.fixture
async def idp() -> AsyncIterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    async with FakeUpstream(endpoint.handle) as server:
        endpoint.server = server
        yield endpoint


@dataclass
class Seen:
    at: float
    authorization: str | None
    body: bytes


class Upstream:
    """Records the Authorization each call arrived with; refuses the tokens in ``refuse``."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.refuse: set[str] = set()

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization")
        self.seen.append(Seen(asyncio.get_running_loop().time(), token, await request.read()))
        if token in self.refuse:
            return web.Response(status=401, text="token refused")
        return web.Response(text="ok")


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, FakeUpstream]]:
    up = Upstream()
    async with FakeUpstream(up.handle) as server:
        yield up, server


def config(idp: TokenEndpoint, url: str, **auth: Any) -> dict[str, Any]:
    return {
        "upstreams": {
            "pay": {
                "url": url,
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": idp.url,
                    "client_id": "shop",
                    "client_secret": {"env": "SHOP_CLIENT_SECRET"},
                    "scopes": ["payments", "refunds"],
                    "retry_backoff": {"base": "50ms", "max": "200ms"},
                    **auth,
                },
            }
        }
    }


@pytest.fixture(autouse=True)
def client_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_CLIENT_SECRET", "s3cret with spaces&symbols")


async def metric(client: httpx.AsyncClient, port: int, name: str) -> float | None:
    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


async def test_n_calls_cost_one_token_fetch(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream]
) -> None:
    """20 calls, one fetch: the token is cached and sent as Bearer, replacing the app's."""
    up, server = upstream
    async with running_sidecar(config(idp, server.url)) as s, httpx.AsyncClient() as c:
        for _ in range(20):
            r = await c.get(
                f"http://127.0.0.1:{s.http_port}/pay/x", headers={"Authorization": "app"}
            )
            assert r.status_code == 200
    assert len(idp.fetches) == 1
    assert {x.authorization for x in up.seen} == {"Bearer tok-1"}
    fetch = idp.fetches[0]
    assert fetch.basic and (fetch.client_id, fetch.client_secret) == (
        "shop",
        "s3cret with spaces&symbols",
    )
    assert fetch.form == {"grant_type": "client_credentials", "scope": "payments refunds"}


async def test_client_credentials_in_the_form_body(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream]
) -> None:
    """client_auth: body sends client_id/client_secret as form fields, with audience and extras."""
    cfg = config(
        idp,
        upstream[1].url,
        client_auth="body",
        audience="https://pay.example",
        extra_params={"resource": "urn:pay"},
    )
    async with running_sidecar(cfg) as s, httpx.AsyncClient() as c:
        assert (await c.get(f"http://127.0.0.1:{s.http_port}/pay/x")).status_code == 200
    [fetch] = idp.fetches
    assert not fetch.basic and fetch.form == {
        "grant_type": "client_credentials",
        "scope": "payments refunds",
        "audience": "https://pay.example",
        "resource": "urn:pay",
        "client_id": "shop",
        "client_secret": "s3cret with spaces&symbols",
    }


async def test_200_concurrent_calls_wait_for_a_single_fetch(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream]
) -> None:
    """Single-flight: 200 calls arriving together before any token exist cause one fetch."""
    idp.delay = 0.3
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        running_sidecar(config(idp, upstream[1].url)) as s,
        httpx.AsyncClient(limits=limits, timeout=10) as c,
    ):
        url = f"http://127.0.0.1:{s.http_port}/pay/x"
        answers = await asyncio.gather(*(c.get(url) for _ in range(200)))
    assert [r.status_code for r in answers] == [200] * 200
    assert len(idp.fetches) == 1
    assert {x.authorization for x in upstream[0].seen} == {"Bearer tok-1"}


async def test_the_token_is_renewed_before_it_expires(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream]
) -> None:
    """A 2 s token is renewed at 50-80 % of its life, in the background, with no failed call."""
    idp.expires_in = 2
    up, server = upstream
    async with running_sidecar(config(idp, server.url)) as s, httpx.AsyncClient() as c:
        url = f"http://127.0.0.1:{s.http_port}/pay/x"
        async with asyncio.timeout(5):
            while len(idp.fetches) < 2:
                assert (await c.get(url)).status_code == 200
                await asyncio.sleep(0.05)  # a steady trickle of calls, not synchronisation
        assert (await c.get(url)).status_code == 200
    first, second = idp.fetches[:2]
    assert 0.95 <= second.at - first.at <= 1.75  # 50-80 % of 2 s, before the 1.8 s expiry
    tokens = [x.authorization for x in up.seen]
    assert tokens[0] == "Bearer tok-1" and tokens[-1] == "Bearer tok-2"


async def test_idp_down_with_a_valid_token_keeps_serving(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream]
) -> None:
    """Renewals fail, but calls keep the still-valid token and succeed."""
    idp.expires_in = 5
    up, server = upstream
    cfg = config(idp, server.url, refresh_at=[0.05, 0.05])  # renew after 0.25 s
    async with running_sidecar(cfg) as s, httpx.AsyncClient() as c:
        url = f"http://127.0.0.1:{s.http_port}/pay/x"
        assert (await c.get(url)).status_code == 200
        idp.fail = 503
        await async_wait_until(lambda: len(idp.fetches) >= 3, limit=5)  # renewals, retried
        for _ in range(10):
            assert (await c.get(url)).status_code == 200
        failed = await metric(
            c, s.admin_port, 'sidecar_tokens_refreshed_total{result="rejected",upstream="pay"}'
        )
    assert failed is not None and failed >= 2
    assert {x.authorization for x in up.seen} == {"Bearer tok-1"}


async def test_idp_down_with_an_expired_token_is_503_and_never_the_stale_token(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream]
) -> None:
    """Once the token expired and the IdP still fails, calls get 503; the upstream never sees
    the expired token; when the IdP is back, calls succeed with a new one."""
    idp.expires_in = 1  # usable for 0.9 s
    up, server = upstream
    async with running_sidecar(config(idp, server.url)) as s, httpx.AsyncClient() as c:
        url = f"http://127.0.0.1:{s.http_port}/pay/x"
        assert (await c.get(url)).status_code == 200
        idp.fail = 500
        gauge = 'sidecar_token_expiry_seconds{upstream="pay"}'

        async def expired() -> bool:
            return await metric(c, s.admin_port, gauge) == 0.0

        async with asyncio.timeout(5):
            while not await expired():
                await asyncio.sleep(0.05)
        before = len(up.seen)
        r = await c.get(url)
        assert r.status_code == 503
        assert r.headers["x-sidecar-error"] == "credentials_unavailable"
        assert "identity provider failed (the token endpoint answered 500" in r.text
        assert "tok-1" not in r.text
        assert len(up.seen) == before
        unavailable = 'sidecar_credentials_unavailable_total{upstream="pay"}'
        assert await metric(c, s.admin_port, unavailable) == 1.0
        idp.fail = None
        async with asyncio.timeout(5):
            while (await c.get(url)).status_code != 200:
                await asyncio.sleep(0.05)
    stale = [x for x in up.seen if x.authorization == "Bearer tok-1"]
    assert stale and all(x.at < idp.fetches[0].at + 0.95 for x in stale)
    assert up.seen[-1].authorization == "Bearer tok-2"


async def test_a_401_renews_the_token_and_the_call_succeeds(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream]
) -> None:
    """The upstream revoked the token: one renewal, one more try, and the app sees 200."""
    up, server = upstream
    up.refuse = {"Bearer tok-1"}
    async with running_sidecar(config(idp, server.url)) as s, httpx.AsyncClient() as c:
        r = await c.post(f"http://127.0.0.1:{s.http_port}/pay/charge", content=b'{"amount": 5}')
        assert r.status_code == 200 and r.text == "ok"
        assert (await c.get(f"http://127.0.0.1:{s.http_port}/pay/x")).status_code == 200
    assert len(idp.fetches) == 2
    assert [(x.authorization, x.body) for x in up.seen[:2]] == [
        ("Bearer tok-1", b'{"amount": 5}'),
        ("Bearer tok-2", b'{"amount": 5}'),
    ]
    assert up.seen[2].authorization == "Bearer tok-2"


def k8s_secret(root: Path, value: str, n: int) -> Path:
    """Write ``root/client-secret`` as a Kubernetes Secret volume does (``..data`` swap)."""
    version = root / f"..v{n}"
    version.mkdir()
    (version / "client-secret").write_text(value + "\n")
    link = root / "..data"
    if link.is_symlink():
        (root / "..data_tmp").symlink_to(version.name)
        os.replace(root / "..data_tmp", link)
    else:
        link.symlink_to(version.name)
        (root / "client-secret").symlink_to("..data/client-secret")
    return root / "client-secret"


async def test_a_client_secret_rotated_on_disk_is_used_by_the_next_fetch(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream], tmp_path: Path
) -> None:
    """The IdP rotated the client secret and the Secret volume was updated: no restart needed."""
    idp.expires_in = 1
    idp.accepted_secret = "client-secret-v1"
    path = k8s_secret(tmp_path, "client-secret-v1", 1)
    cfg = config(idp, upstream[1].url, client_secret={"file": str(path)})
    async with running_sidecar(cfg) as s, httpx.AsyncClient() as c:
        url = f"http://127.0.0.1:{s.http_port}/pay/x"
        assert (await c.get(url)).status_code == 200
        k8s_secret(tmp_path, "client-secret-v2", 2)
        idp.accepted_secret = "client-secret-v2"
        rotated = len(idp.fetches)
        await async_wait_until(lambda: len(idp.fetches) > rotated, limit=5)
        assert idp.fetches[rotated].client_secret == "client-secret-v2"
        async with asyncio.timeout(5):
            while (await c.get(url)).status_code != 200:
                await asyncio.sleep(0.05)
    assert [f.client_secret for f in idp.fetches[rotated:]] == ["client-secret-v2"] * (
        len(idp.fetches) - rotated
    )


async def test_upstreams_and_metrics_show_the_token_state_without_the_token(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream]
) -> None:
    """/upstreams shows fetches and validity; /metrics the expiry gauge; never the token."""
    async with running_sidecar(config(idp, upstream[1].url)) as s, httpx.AsyncClient() as c:
        await c.get(f"http://127.0.0.1:{s.http_port}/pay/x")
        view = (await c.get(f"http://127.0.0.1:{s.admin_port}/upstreams")).json()
        gauge = await metric(c, s.admin_port, 'sidecar_token_expiry_seconds{upstream="pay"}')
        ok = await metric(
            c, s.admin_port, 'sidecar_tokens_refreshed_total{result="ok",upstream="pay"}'
        )
    auth = view["pay"]["policies"]["auth"]
    assert auth["type"] == "oauth2_client_credentials" and auth["scopes"] == ["payments", "refunds"]
    assert auth["token"]["fetched"] == 1 and 50 < auth["token"]["valid_for_s"] <= 54
    assert gauge is not None and 50 < gauge <= 54 and ok == 1.0
    assert "tok-1" not in str(view)


async def test_a_slow_or_unreachable_token_endpoint_is_a_clear_503(
    idp: TokenEndpoint, upstream: tuple[Upstream, FakeUpstream]
) -> None:
    """No token and no answer from the IdP (in time, or at all): 503 saying which."""
    idp.delay = 1
    slow = config(idp, upstream[1].url, timeout="200ms")
    down = config(idp, upstream[1].url, token_url="http://127.0.0.1:1/token")
    async with running_sidecar(slow) as s, httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{s.http_port}/pay/x")
        counted = await metric(
            c, s.admin_port, 'sidecar_tokens_refreshed_total{result="unreachable",upstream="pay"}'
        )
    assert r.status_code == 503 and "no answer from the token endpoint within 0.2s" in r.text
    assert counted == 1.0
    async with running_sidecar(down) as s, httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{s.http_port}/pay/x")
    assert r.status_code == 503 and "cannot reach the token endpoint" in r.text
    assert upstream[0].seen == []
