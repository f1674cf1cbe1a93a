"""api_key, bearer, basic and hmac credentials reach a real upstream through a real sidecar."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.testing import FakeUpstream, RecordedRequest, running_sidecar


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAY_API_KEY", "ak-7f3/=+")
    monkeypatch.setenv("LEDGER_PASSWORD", "pw-ünïcode")
    monkeypatch.setenv("HOOK_SECRET", "hook-secret-9")


@pytest.fixture
async def up() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


def header(r: RecordedRequest, name: str) -> list[str]:
    """Every value of one header as the upstream received it (names ignore case)."""
    return [v for k, v in r.raw_headers if k.lower() == name.lower()]


def k8s_secret(root: Path, value: str, n: int) -> Path:
    """``root/token`` written as a Kubernetes Secret volume does (the ``..data`` swap)."""
    version = root / f"..v{n}"
    version.mkdir()
    (version / "token").write_text(value + "\n")
    if (root / "..data").is_symlink():
        (root / "..tmp").symlink_to(version.name)
        os.replace(root / "..tmp", root / "..data")
    else:
        (root / "..data").symlink_to(version.name)
        (root / "token").symlink_to("..data/token")
    return root / "token"


def config(url: str, token_file: Path) -> dict[str, Any]:
    return {
        "upstreams": {
            "keyed": {"url": url, "auth": {"type": "api_key", "key": {"env": "PAY_API_KEY"}}},
            "keyfile": {"url": url, "auth": {"type": "api_key", "key": {"file": str(token_file)}}},
            "queried": {
                "url": url,
                "auth": {"type": "api_key", "key": {"env": "PAY_API_KEY"}, "query": "api_key"},
            },
            "bearer": {"url": url, "auth": {"type": "bearer", "token": {"file": str(token_file)}}},
            "basic": {
                "url": url,
                "auth": {
                    "type": "basic",
                    "username": "ledger",
                    "password": {"env": "LEDGER_PASSWORD"},
                },
            },
            "signed": {
                "url": f"{url}/base",
                "auth": {"type": "hmac", "secret": {"env": "HOOK_SECRET"}},
            },
            "passing": {
                "url": url,
                "auth": {
                    "type": "bearer",
                    "token": {"file": str(token_file)},
                    "pass_through": True,
                },
            },
        }
    }


async def test_each_static_credential_reaches_the_upstream_replacing_the_apps(
    up: FakeUpstream, tmp_path: Path
) -> None:
    """The upstream gets exactly the configured credential, never the app's alongside it."""
    token = k8s_secret(tmp_path, "bt-file-token", 1)
    apps = {"Authorization": "Bearer apps-own", "X-API-Key": "apps-key"}
    async with running_sidecar(config(up.url, token)) as s, httpx.AsyncClient() as c:
        base = f"http://127.0.0.1:{s.http_port}"
        for path in ("/keyed/a", "/queried/b?x=1&api_key=apps", "/bearer/c", "/basic/d"):
            assert (await c.get(base + path, headers=apps)).status_code == 200
    keyed, queried, bearer, basic = up.requests
    assert header(keyed, "x-api-key") == ["ak-7f3/=+"]
    assert header(keyed, "authorization") == ["Bearer apps-own"]  # not api_key's business
    assert queried.path_qs == "/b?x=1&api_key=ak-7f3%2F%3D%2B"
    assert header(bearer, "authorization") == ["Bearer bt-file-token"]
    [value] = header(basic, "authorization")
    assert base64.b64decode(value.removeprefix("Basic ")).decode() == "ledger:pw-ünïcode"


async def test_hmac_signature_verifies_with_an_independent_implementation(
    up: FakeUpstream, tmp_path: Path
) -> None:
    """The upstream can verify X-Signature with hashlib/hmac from the documented recipe."""
    async with running_sidecar(config(up.url, k8s_secret(tmp_path, "t", 1))) as s:
        async with httpx.AsyncClient() as c:
            r = await c.post(
                f"http://127.0.0.1:{s.http_port}/signed/hooks/order?id=7",
                content=b'{"total": 12}',
                headers={"X-Signature": "sha256=apps-own"},
            )
            assert r.status_code == 200
    [got] = up.requests
    [timestamp] = header(got, "x-timestamp")
    [signature] = header(got, "x-signature")
    assert got.path_qs == "/base/hooks/order?id=7" and got.body == b'{"total": 12}'
    digest = hashlib.sha256(got.body).hexdigest()
    message = f"{timestamp}\nPOST\n{got.path_qs}\n{digest}".encode()
    expected = hmac.new(b"hook-secret-9", message, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"


@pytest.mark.parametrize(
    ("upstream", "name", "sent"),
    [("bearer", "authorization", "Bearer {}"), ("keyfile", "x-api-key", "{}")],
)
async def test_a_rotated_token_file_is_used_without_a_restart(
    up: FakeUpstream, tmp_path: Path, upstream: str, name: str, sent: str
) -> None:
    """A Secret volume update (..data swap) reaches the upstream within about a second, as a
    bearer token or as an API key in a header."""
    token = k8s_secret(tmp_path, "bt-v1", 1)
    async with running_sidecar(config(up.url, token)) as s, httpx.AsyncClient() as c:
        url = f"http://127.0.0.1:{s.http_port}/{upstream}/x"
        assert (await c.get(url)).status_code == 200
        k8s_secret(tmp_path, "bt-v2", 2)
        for _ in range(100):  # bounded: one call every 50 ms for up to 5 s
            assert (await c.get(url)).status_code == 200
            if header(up.requests[-1], name) == [sent.format("bt-v2")]:
                break
            await asyncio.sleep(0.05)
    assert header(up.requests[0], name) == [sent.format("bt-v1")]
    assert header(up.requests[-1], name) == [sent.format("bt-v2")]


async def test_pass_through_forwards_the_apps_authorization(
    up: FakeUpstream, tmp_path: Path
) -> None:
    """pass_through: true: an app that sends its own credential keeps it; others get ours."""
    async with running_sidecar(config(up.url, k8s_secret(tmp_path, "ours", 1))) as s:
        async with httpx.AsyncClient() as c:
            url = f"http://127.0.0.1:{s.http_port}/passing/x"
            await c.get(url, headers={"Authorization": "Bearer apps-own"})
            await c.get(url)
    assert [header(r, "authorization") for r in up.requests] == [
        ["Bearer apps-own"],
        ["Bearer ours"],
    ]
