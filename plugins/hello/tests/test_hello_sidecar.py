"""The hello plugin in a real sidecar on 127.0.0.1, as `sidecar.testing` runs any plugin."""

from __future__ import annotations

from typing import Any

import httpx
import sidecar_hello

from sidecar.testing import FakeUpstream


async def test_a_call_through_the_sidecar_comes_back_greeted(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """With `plugins.hello.greeting` set, the app's call reaches the upstream and is greeted."""
    config = {
        "upstreams": {"shop": {"url": fake_upstream.url}},
        "plugins": {"hello": {"greeting": "hi from the sidecar"}},
    }
    async with sidecar_factory(config, plugins=[sidecar_hello]) as s:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{s.http_port}/shop/items?x=1")
    assert (r.status_code, r.text) == (200, "ok")
    assert r.headers["x-hello"] == "hi from the sidecar"
    assert [x.path_qs for x in fake_upstream.requests] == ["/items?x=1"]


async def test_without_the_section_calls_pass_unchanged(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """Installing the plugin alone changes no call: no `x-hello` without a greeting."""
    config = {"upstreams": {"shop": {"url": fake_upstream.url}}}
    async with sidecar_factory(config, plugins=[sidecar_hello]) as s:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{s.http_port}/shop/")
    assert r.status_code == 200
    assert "x-hello" not in r.headers


async def test_a_call_refused_by_the_rate_limit_is_not_greeted(
    fake_upstream: FakeUpstream, sidecar_factory: Any
) -> None:
    """The filter runs after the admission decisions: a 429 never reaches it."""
    config = {
        "upstreams": {
            "shop": {"url": fake_upstream.url, "rate_limit": {"rate": "1/min", "burst": 1}}
        },
        "plugins": {"hello": {"greeting": "hi"}},
    }
    async with sidecar_factory(config, plugins=[sidecar_hello]) as s:
        async with httpx.AsyncClient() as client:
            admitted = await client.get(f"http://127.0.0.1:{s.http_port}/shop/")
            refused = await client.get(f"http://127.0.0.1:{s.http_port}/shop/")
    assert (admitted.status_code, admitted.headers.get("x-hello")) == (200, "hi")
    assert (refused.status_code, refused.headers["x-sidecar-error"]) == (429, "rate_limited")
    assert "x-hello" not in refused.headers
    assert len(fake_upstream.requests) == 1
