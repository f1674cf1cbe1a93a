"""SIGTERM: drain without failing a call that started before it, within a bounded grace.

These tests are about the drain itself, so the wait for the app to go quiet that comes first
(``shutdown.app_quiet_period``) is off where it would change what they see: it keeps accepting
the app's calls. tests/integration/test_pod_lifecycle.py covers that wait.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass

import httpx
from aiohttp import web

from sidecar.testing import FakeUpstream, SidecarProcess, async_wait_until

from .raw_http import RawConnection, get

SLOW = 0.3  # seconds the upstream takes to answer
#: the drain at once, as without the wait for the app (see the module docstring)
NO_APP_WAIT = {"app_quiet_period": 0}


@dataclass
class Call:
    started: float
    ended: float
    status: int | None  # None: the call failed
    connection: str | None
    error: str = ""


async def readiness_went_503(admin_url: str, limit: float = 5.0) -> bool:
    """Poll /readyz until it says 503 (True) or the admin port is gone (False)."""
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient() as c:
        while time.monotonic() < deadline:
            try:
                r = await c.get(f"{admin_url}/readyz", timeout=1)
            except httpx.TransportError:
                return False
            if r.status_code == 503:
                return True
            await asyncio.sleep(0.005)
    return False


async def wait_exit(p: SidecarProcess, limit: float) -> int:
    assert p.proc is not None
    return await asyncio.to_thread(p.proc.wait, limit)


async def test_sigterm_under_load_fails_no_call_that_started_before_it() -> None:
    """A rolling update must not cost the app a single call that was already on its way."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(SLOW)  # the upstream's own pace, not synchronisation
        return web.Response(text="ok")

    workers, grace = 24, 10.0
    calls: list[Call] = []
    signalled: list[float] = []

    async def client_loop(url: str) -> None:
        # one keep-alive connection per client, like an app's connection pool
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=grace + 5) as c:
            while True:
                started = time.monotonic()
                try:
                    r = await c.get(url)
                except httpx.TransportError as e:
                    # after the signal: refused, as expected; before it: a failure, asserted below
                    calls.append(Call(started, time.monotonic(), None, None, repr(e)))
                    return
                calls.append(
                    Call(started, time.monotonic(), r.status_code, r.headers.get("connection"))
                )

    async with FakeUpstream(slow) as up:
        config = {
            "shutdown": {"drain_timeout": f"{grace}s", **NO_APP_WAIT},
            "upstreams": {"up": {"url": up.url}},
        }
        with SidecarProcess(config) as p:
            tasks = [asyncio.create_task(client_loop(f"{p.http_url}/up/x")) for _ in range(workers)]
            try:
                # every client has a warm keep-alive connection and a call in flight
                await async_wait_until(lambda: len(calls) >= 2 * workers, limit=20)
                signalled.append(time.monotonic())
                p.send(signal.SIGTERM)
                went_503 = await readiness_went_503(p.admin_url)
                rc = await wait_exit(p, grace + 5)
                stopped_after = time.monotonic() - signalled[0]
                await asyncio.wait_for(asyncio.gather(*tasks), 10)
            finally:
                for t in tasks:
                    t.cancel()
    sig = signalled[0]
    before = [c for c in calls if c.started < sig]
    failed = [c for c in before if c.status != 200]
    assert failed == [], failed[:3]
    # calls in flight at the signal were answered; those answered once the drain had surely
    # begun (the sidecar handles the signal within milliseconds) were told to close
    late = [c for c in before if c.ended > sig + SLOW / 3]
    assert len(late) >= workers // 2  # the signal really landed under load
    assert all(c.connection == "close" for c in late)
    assert went_503
    assert rc == 0
    assert stopped_after < grace  # done when the last call finished, not at the grace
    # a call started after the signal was refused (it needed a new connection) or, if it caught
    # its keep-alive connection before the drain began, answered and told to close
    after = [c for c in calls if c.started > sig]
    assert after and all(c.status is None or c.connection == "close" for c in after)
    assert all(c.status in (None, 200) for c in after)


async def test_drain_closes_idle_keepalives_refuses_new_connections_and_finishes_in_flight() -> (
    None
):
    """During the drain: not ready, no new connections, idle ones closed, busy ones answered."""
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/hold":
            await release.wait()
        return web.Response(text="done")

    async with FakeUpstream(answer) as up:
        config = {
            "shutdown": {"drain_timeout": "20s", **NO_APP_WAIT},
            "upstreams": {"up": {"url": up.url}},
        }
        try:
            with SidecarProcess(config) as p:
                # a keep-alive connection that served one call and now waits
                reader, writer = await asyncio.open_connection("127.0.0.1", p.http_port)
                writer.write(b"GET /up/fast HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"done"), 5)
                assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head
                async with httpx.AsyncClient(timeout=20) as c:
                    busy = asyncio.create_task(c.get(f"{p.http_url}/up/hold"))
                    await async_wait_until(lambda: len(up.requests) == 2)
                    p.send(signal.SIGTERM)
                    assert await readiness_went_503(p.admin_url)
                    # the idle keep-alive connection is closed by the sidecar (EOF)
                    assert await asyncio.wait_for(reader.read(1), 5) == b""
                    writer.close()
                    # a new connection is refused while the busy one is still being answered
                    try:
                        _, w = await asyncio.open_connection("127.0.0.1", p.http_port)
                        w.close()
                        refused = False
                    except ConnectionRefusedError:
                        refused = True
                    assert refused
                    assert p.proc is not None and p.proc.poll() is None  # still draining
                    release.set()
                    r = await asyncio.wait_for(busy, 10)
                assert (r.status_code, r.text, r.headers["connection"]) == (200, "done", "close")
                assert await wait_exit(p, 10) == 0
        finally:
            release.set()


async def test_a_call_running_past_the_grace_is_cut_and_the_process_still_exits_0() -> None:
    """A stuck call cannot hold a rolling update hostage: the grace bounds the drain."""
    release = asyncio.Event()

    async def stuck(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="too late")

    async with FakeUpstream(stuck) as up:
        grace = 0.5
        config = {"shutdown": {"drain_timeout": f"{grace}s"}, "upstreams": {"up": {"url": up.url}}}
        try:
            with SidecarProcess(config) as p:
                async with httpx.AsyncClient(timeout=20) as c:
                    call = asyncio.create_task(c.get(f"{p.http_url}/up/stuck"))
                    await async_wait_until(lambda: len(up.requests) == 1)
                    sent = time.monotonic()
                    p.send(signal.SIGTERM)
                    rc = await wait_exit(p, 10)
                    took = time.monotonic() - sent
                    try:
                        await asyncio.wait_for(call, 10)
                        cut = False
                    except httpx.TransportError:  # the sidecar closed the connection on it
                        cut = True
                logs = p.log_lines()
                access = p.log_lines(stdout=True)
        finally:
            release.set()
    assert rc == 0
    assert cut
    assert grace <= took < grace + 3
    cut_line = [x for x in logs if x["msg"] == "drain timeout: connections cut"]
    assert cut_line and cut_line[0]["connections"] == 1
    assert [(x["status"], x.get("aborted")) for x in access] == [(499, True)]


async def test_a_second_sigterm_during_the_drain_stops_at_once() -> None:
    """An operator who cannot wait for the grace can insist (exit status 143, as documented)."""
    release = asyncio.Event()

    async def stuck(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="too late")

    async with FakeUpstream(stuck) as up:
        config = {"shutdown": {"drain_timeout": "30s"}, "upstreams": {"up": {"url": up.url}}}
        try:
            with SidecarProcess(config) as p:
                async with httpx.AsyncClient(timeout=20) as c:
                    call = asyncio.create_task(c.get(f"{p.http_url}/up/stuck"))
                    await async_wait_until(lambda: len(up.requests) == 1)
                    p.send(signal.SIGTERM)
                    assert await readiness_went_503(p.admin_url)
                    p.send(signal.SIGTERM)
                    assert await wait_exit(p, 10) == -signal.SIGTERM
                    call.cancel()
        finally:
            release.set()


async def test_pipelined_requests_read_before_the_drain_are_answered_the_last_with_close() -> None:
    """Requests an app pipelined behind a slow call before SIGTERM are answered, not dropped;
    the last says `Connection: close`, and a request sent after the drain began is not read."""
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/hold":
            await release.wait()
        return web.Response(text=f"answer {request.path}")

    async with FakeUpstream(answer) as up:
        config = {
            "shutdown": {"drain_timeout": "20s", **NO_APP_WAIT},
            "upstreams": {"up": {"url": up.url}},
        }
        try:
            with SidecarProcess(config) as p:
                async with await RawConnection.open(p.http_port) as c:
                    await c.send(get("/up/hold") + get("/up/second"))
                    await async_wait_until(lambda: len(up.requests) == 1)  # /second is queued
                    p.send(signal.SIGTERM)
                    assert await readiness_went_503(p.admin_url)
                    await c.send(get("/up/third"))  # after the drain began: never read
                    release.set()
                    first, second = await c.response(), await c.response()
                    assert await c.closed()
                assert await wait_exit(p, 10) == 0
        finally:
            release.set()
    assert (first.status, first.body, first.header("connection")) == (200, b"answer /hold", None)
    assert (second.status, second.body) == (200, b"answer /second")
    assert second.header("connection") == "close"
    assert [r.path_qs for r in up.requests] == ["/hold", "/second"]
