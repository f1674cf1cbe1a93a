"""Timeouts against real stalling upstreams on loopback: the deadline fires on time (±100 ms),
covers every retry, and the app may ask for a shorter one with `x-sidecar-timeout`.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from sidecar.app import Sidecar
from sidecar.testing import FakeUpstream, running_sidecar
from tests.integration.raw_upstream import RawUpstream, UpstreamConn, answer_each, ok_response

#: how far from the configured value a timeout may fire (timer granularity, a loaded machine).
TOLERANCE = 0.1
FAST = {"base": "1ms", "max": "2ms"}


def config(url: str, retry: dict[str, Any] | None = None, **up: Any) -> dict[str, Any]:
    return {"upstreams": {"up": {"url": url, "retry": {"backoff": FAST, **(retry or {})}, **up}}}


def client(s: Sidecar) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=10.0)


async def stall(conn: UpstreamConn) -> None:
    """Read the request, never answer; end when the sidecar closes the connection."""
    await conn.request()
    await conn.closed_by_peer()


async def timed(c: httpx.AsyncClient, path: str, **kw: Any) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    r = await c.get(path, **kw)
    return r, time.monotonic() - start


async def test_the_upstream_timeout_fires_on_time_with_504() -> None:
    """A stuck upstream costs the app `timeout` (300 ms), then a clear 504 `upstream_timeout`."""
    async with RawUpstream(stall) as up, running_sidecar(config(up.url, timeout="300ms")) as s:
        async with client(s) as c:
            r, elapsed = await timed(c, "/up/x")
        assert (r.status_code, r.headers["x-sidecar-error"]) == (504, "upstream_timeout")
        assert abs(elapsed - 0.3) <= TOLERANCE, elapsed
        assert await up.conns[0].closed_by_peer()  # the stuck connection is not kept


async def test_the_deadline_covers_every_retry() -> None:
    """Per-try timeouts and retries never stretch the call past its overall `timeout`."""
    retry = {"attempts": 10, "per_try_timeout": "150ms", "budget": {"min_retries": 100}}
    async with (
        RawUpstream(stall) as up,
        running_sidecar(config(up.url, retry, timeout="400ms")) as s,
    ):
        async with client(s) as c:
            r, elapsed = await timed(c, "/up/x")
        assert r.status_code == 504
        assert abs(elapsed - 0.4) <= TOLERANCE, elapsed
        assert 2 <= len(up.conns) <= 3  # 150 ms tries fit 400 ms twice, the third is cut


async def test_per_try_timeout_cuts_a_stalled_attempt_and_the_next_one_succeeds() -> None:
    """One stuck connection costs `per_try_timeout` (200 ms), not the whole 5 s budget."""

    async def script(conn: UpstreamConn) -> None:
        if conn.index == 0:
            await stall(conn)
        else:
            await answer_each(conn, ok_response(b"fresh"))

    retry = {"per_try_timeout": "200ms"}
    async with RawUpstream(script) as up, running_sidecar(config(up.url, retry)) as s:
        async with client(s) as c:
            r, elapsed = await timed(c, "/up/x")
        assert (r.status_code, r.text) == (200, "fresh")
        assert abs(elapsed - 0.2) <= TOLERANCE, elapsed
        assert await up.conns[0].closed_by_peer()
        value = s.metrics.registry.get_sample_value(
            "sidecar_retries_total", {"upstream": "up", "route": "up", "condition": "timeout"}
        )
        assert value == 1


async def test_x_sidecar_timeout_shortens_the_deadline_and_is_not_forwarded() -> None:
    """The app can ask for 200 ms when the operator allows 10 s; the upstream never sees it."""
    async with RawUpstream(stall) as up, running_sidecar(config(up.url, timeout="10s")) as s:
        async with client(s) as c:
            r, elapsed = await timed(c, "/up/x", headers={"x-sidecar-timeout": "200ms"})
        assert (r.status_code, r.headers["x-sidecar-error"]) == (504, "upstream_timeout")
        assert abs(elapsed - 0.2) <= TOLERANCE, elapsed
        assert up.conns[0].requests[0].header("x-sidecar-timeout") is None


async def test_x_sidecar_timeout_cannot_extend_the_operator_timeout() -> None:
    """Asking for 10 s on an upstream limited to 300 ms still ends at 300 ms."""
    async with RawUpstream(stall) as up, running_sidecar(config(up.url, timeout="300ms")) as s:
        async with client(s) as c:
            r, elapsed = await timed(c, "/up/x", headers={"x-sidecar-timeout": "10"})
        assert r.status_code == 504
        assert abs(elapsed - 0.3) <= TOLERANCE, elapsed


async def test_a_malformed_x_sidecar_timeout_is_400_and_reaches_no_upstream() -> None:
    """A typo is answered 400 `bad_request` at once; the connection stays usable."""
    async with FakeUpstream() as up, running_sidecar(config(up.url)) as s:
        async with client(s) as c:
            bad = await c.get("/up/x", headers={"x-sidecar-timeout": "soon"})
            good = await c.get("/up/x", headers={"x-sidecar-timeout": "2s"})
        assert (bad.status_code, bad.headers["x-sidecar-error"]) == (400, "bad_request")
        assert "x-sidecar-timeout" in bad.text and bad.headers.get("connection") != "close"
        assert good.status_code == 200
        assert len(up.requests) == 1
        assert "x-sidecar-timeout" not in {k.lower() for k in up.requests[0].headers}
