"""The first thing a newcomer does: call an upstream through the sidecar."""

from __future__ import annotations

import httpx

from sidecar.testing import FakeUpstream, running_sidecar


async def test_get_through_prefix_route_reaches_upstream_with_prefix_stripped() -> None:
    """`/<upstream>/<rest>` forwards `<rest>` to the upstream and returns its answer."""
    async with FakeUpstream() as up, running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{s.http_port}/up/a/b?x=1")
        assert r.status_code == 200
        assert r.text == "ok"
        assert up.requests[0].path_qs == "/a/b?x=1"
        assert up.requests[0].headers["Host"] == f"127.0.0.1:{up.port}"
        assert up.requests[0].headers["X-Forwarded-For"] == "127.0.0.1"


async def test_embedded_default_echo_route_answers_without_any_upstream() -> None:
    """`sidecar run` with no file: the demo `echo` upstream answers, showing the injected header."""
    from sidecar.config import load_config

    text = load_config(None).model_dump(mode="json")
    text["admin"] = {"address": "127.0.0.1:0"}
    text["http"]["address"] = "127.0.0.1:0"
    async with running_sidecar(text) as s, httpx.AsyncClient() as client:
        r = await client.get(f"http://127.0.0.1:{s.http_port}/echo/hello")
    assert r.status_code == 200
    doc = r.json()
    assert doc["path"] == "/hello"
    assert doc["headers"]["x-sidecar-demo"] == "injected-by-sidecar"
