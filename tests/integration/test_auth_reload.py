"""Reloads and credentials: a cached token survives an unrelated change; a bad auth is refused."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from sidecar.testing import FakeUpstream, running_sidecar


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELOAD_CLIENT_SECRET", "cs")
    monkeypatch.setenv("RELOAD_TOKEN", "static-token")


def write(path: Path, config: dict[str, Any]) -> str:
    config = {
        "admin": {"address": "127.0.0.1:0"},
        "http": {"address": "127.0.0.1:0"},
        "grpc": {"address": "127.0.0.1:0"},
        **config,
    }
    path.write_text(yaml.safe_dump(config))
    return path.read_text()


async def test_a_reload_that_leaves_auth_alone_keeps_the_cached_token(tmp_path: Path) -> None:
    """Changing a timeout does not cost a token fetch: the provider and its token are kept."""
    fetches: list[int] = []

    async def token(request: web.Request) -> web.Response:
        fetches.append(1)
        return web.json_response({"access_token": f"tok-{len(fetches)}", "expires_in": 300})

    async with FakeUpstream(token) as idp, FakeUpstream() as up:
        auth = {
            "type": "oauth2_client_credentials",
            "token_url": f"{idp.url}/token",
            "client_id": "shop",
            "client_secret": {"env": "RELOAD_CLIENT_SECRET"},
        }
        path = tmp_path / "sidecar.yaml"
        text = write(path, {"upstreams": {"pay": {"url": up.url, "auth": auth}}})
        async with running_sidecar(text, config_path=str(path)) as s, httpx.AsyncClient() as c:
            url = f"http://127.0.0.1:{s.http_port}/pay/x"
            assert (await c.get(url)).status_code == 200
            write(path, {"upstreams": {"pay": {"url": up.url, "auth": auth, "timeout": "3s"}}})
            assert await s.reload()
            assert (await c.get(url)).status_code == 200
            write(path, {"upstreams": {"pay": {"url": up.url, "auth": {**auth, "scopes": ["a"]}}}})
            assert await s.reload()
            assert (await c.get(url)).status_code == 200
    assert len(fetches) == 2  # the first, and one for the new scopes; none for the timeout
    assert [r.headers["Authorization"] for r in up.requests] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_a_reload_with_an_unusable_auth_is_refused_and_the_old_one_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing secret or a typo in auth refuses the reload, at its key path; calls go on."""
    async with FakeUpstream() as up:
        good = {"type": "bearer", "token": {"env": "RELOAD_TOKEN"}}
        path = tmp_path / "sidecar.yaml"
        text = write(path, {"upstreams": {"pay": {"url": up.url, "auth": good}}})
        async with running_sidecar(text, config_path=str(path)) as s, httpx.AsyncClient() as c:
            bad = {"type": "bearer", "token": {"env": "RELOAD_MISSING"}, "shceme": "x"}
            write(path, {"upstreams": {"pay": {"url": up.url, "auth": bad}}})
            with caplog.at_level(logging.ERROR, logger="sidecar"):
                assert not await s.reload()
            assert (await c.get(f"http://127.0.0.1:{s.http_port}/pay/x")).status_code == 200
    fields = [getattr(r, "fields", {}) for r in caplog.records]
    problems = [f["problem"] for f in fields if isinstance(f.get("problem"), str)]
    assert f"{path}: upstreams.pay.auth.shceme: unknown key (did you mean 'scheme'?)" in problems
    assert any("upstreams.pay.auth.token: the secret {env: RELOAD_MISSING}" in p for p in problems)
    assert up.requests[-1].headers["Authorization"] == "Bearer static-token"
