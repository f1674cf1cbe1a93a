"""No SSRF through the listener: `..`, `%2F`, `Host`, absolute URIs reach configured upstreams only.

Requests go over raw sockets because HTTP clients normalise paths before sending them, which is
exactly what these tests must not let happen on the client side.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from sidecar.testing import FakeUpstream, running_sidecar

from .raw_http import RawConnection, RawResponse


@dataclass
class Env:
    port: int
    up: FakeUpstream
    other: FakeUpstream
    #: a server on loopback that is NOT configured: nothing may ever reach it
    canary: FakeUpstream


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with FakeUpstream() as up, FakeUpstream() as other, FakeUpstream() as canary:
        cfg = {"upstreams": {"up": {"url": up.url}, "other": {"url": other.url}}}
        async with running_sidecar(cfg) as s:
            yield Env(s.http_port, up, other, canary)
        assert canary.requests == []


async def _get(env: Env, target: str, host: str = "127.0.0.1") -> RawResponse:
    async with await RawConnection.open(env.port) as conn:
        await conn.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("latin-1"))
        return await conn.response()


def _paths(up: FakeUpstream) -> list[str]:
    return [r.path_qs for r in up.requests]


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        ("/up/a/../b", "/b"),
        ("/up//a/./b/", "/a/b/"),
        ("/up/%7Euser/%41", "/~user/A"),
        ("/up/x/%2e%2e/y", "/y"),
        ("/up/x?a=../%2F&b=%2e%2e//", "/x?a=../%2F&b=%2e%2e//"),
        ("/up/../up/z", "/z"),
    ],
)
async def test_upstream_receives_the_normalised_path_and_the_untouched_query(
    env: Env, target: str, forwarded: str
) -> None:
    """What routing matched is exactly what the upstream sees; the query is passed verbatim."""
    resp = await _get(env, target)
    assert resp.status == 200
    assert _paths(env.up) == [forwarded]


@pytest.mark.parametrize(
    "target",
    ["/up/../secret/x", "/up/%2e%2e/secret/x", "/up/..%2F..%2Fsecret", "/up/%2E%2E/%2e%2e/secret"],
)
async def test_dot_segments_never_reach_an_unconfigured_name(env: Env, target: str) -> None:
    """`/up/../secret` is `/secret`: 404 `no_route` when no upstream is called `secret`."""
    resp = await _get(env, target)
    assert resp.status == 404
    assert resp.header("x-sidecar-error") == "no_route"
    assert env.up.requests == [] and env.other.requests == []


async def test_dot_segments_can_only_move_to_another_configured_upstream(env: Env) -> None:
    """`/up/../other/x` is `/other/x`: routed (and authorised) as `other`, never as `up`."""
    resp = await _get(env, "/up/../other/x")
    assert resp.status == 200
    assert env.up.requests == []
    assert _paths(env.other) == ["/x"]


@pytest.mark.parametrize("target", ["/up/a%2Fb", "/up/a%2fb", "/up/a%5Cb", "/up/a\\b", "/up/..;/x"])
async def test_encoded_separators_are_404_with_a_clear_body_and_keep_alive(
    env: Env, target: str
) -> None:
    """An encoded `/` or `\\` is refused with 404 `no_route` saying why; the connection lives on."""
    async with await RawConnection.open(env.port) as conn:
        await conn.send(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode("latin-1"))
        resp = await conn.response()
        assert resp.status == 404
        assert resp.header("x-sidecar-error") == "no_route"
        assert b"refused" in resp.body and resp.body.count(b"\n") == 1
        await conn.send(b"GET /up/ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert (await conn.response()).status == 200
    assert _paths(env.up) == ["/ok"]


async def test_unknown_host_falls_back_to_path_routing(env: Env) -> None:
    """`Host: evil.example` reaches nothing new: the path decides; upstream gets its own Host."""
    resp = await _get(env, "/up/x", host="evil.example")
    assert resp.status == 200
    assert _paths(env.up) == ["/x"]
    assert env.up.requests[0].headers["Host"] == f"127.0.0.1:{env.up.port}"
    resp = await _get(env, "/x", host="evil.example")
    assert resp.status == 404


async def test_host_naming_a_configured_upstream_routes_there(env: Env) -> None:
    """`Host: other` routes to `other` with the whole path (the documented Host rule)."""
    resp = await _get(env, "/up/x", host="other:15001")
    assert resp.status == 200
    assert _paths(env.other) == ["/up/x"]
    assert env.up.requests == []


async def test_host_pointing_at_a_loopback_server_reaches_nothing(env: Env) -> None:
    """`Host: 127.0.0.1:<unconfigured port>` does not make the sidecar call that address."""
    resp = await _get(env, "/", host=f"127.0.0.1:{env.canary.port}")
    assert resp.status == 404
    assert resp.header("x-sidecar-error") == "no_route"


@pytest.mark.parametrize(
    "target",
    [
        "http://evil.example/",
        "http://evil.example/up/x",
        "http://127.0.0.1:{canary}/",
        "http://127.0.0.1:{canary}/up/x",
        "https://evil.example/other/x",
    ],
)
async def test_absolute_form_to_anything_unconfigured_is_404(env: Env, target: str) -> None:
    """The sidecar is no open proxy: absolute URIs reach configured upstreams by name or nothing."""
    resp = await _get(env, target.format(canary=env.canary.port), host="up")
    assert resp.status == 404
    assert resp.header("x-sidecar-error") == "no_route"
    assert env.up.requests == [] and env.other.requests == []


async def test_absolute_form_naming_a_configured_upstream_reaches_it(env: Env) -> None:
    """An app using the sidecar as its HTTP proxy (`http://up/x`) reaches `up` with `/x`."""
    resp = await _get(env, "http://up/x/../y?q=1", host="evil.example")
    assert resp.status == 200
    assert _paths(env.up) == ["/y?q=1"]
