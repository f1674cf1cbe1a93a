"""Upstreams that fail, stall, lie or attack: the app gets a clear, typed answer and nothing leaks.

Each hostile upstream is a raw socket server scripted by the test (``raw_upstream``), because a
real HTTP library would refuse to send these bytes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from sidecar.app import Sidecar
from sidecar.testing import async_wait_until, running_sidecar
from tests.integration.raw_upstream import (
    RawUpstream,
    UpstreamConn,
    answer_each,
    ok_response,
)


def _config(url: str, **up: Any) -> dict[str, Any]:
    return {"upstreams": {"up": {"url": url, **up}}}


@asynccontextmanager
async def _client(s: Sidecar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{s.http_port}", timeout=10.0
    ) as client:
        yield client


def _opened(s: Sidecar, upstream: str = "up") -> int:
    return int(s.describe_upstreams()[upstream]["connections_opened"])


HOSTILE = {
    "garbage-status-line": b"HTTX/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    "non-numeric-status": b"HTTP/1.1 2x0 OK\r\ncontent-length: 2\r\n\r\nok",
    "status-out-of-range": b"HTTP/1.1 999 Nope\r\ncontent-length: 2\r\n\r\nok",
    "http-2-status-line": b"HTTP/2.0 200 OK\r\ncontent-length: 2\r\n\r\nok",
    "http-2-kept-alive": (
        b"HTTP/2.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok"
    ),
    "http-2-interim": (
        b"HTTP/2.0 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    ),
    "bad-header-name-char": b"HTTP/1.1 200 OK\r\nx-a\x01b: 1\r\ncontent-length: 2\r\n\r\nok",
    "nul-in-header-value": b"HTTP/1.1 200 OK\r\nx-a: b\x00c\r\ncontent-length: 2\r\n\r\nok",
    "space-before-colon": b"HTTP/1.1 200 OK\r\nx-a : b\r\ncontent-length: 2\r\n\r\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\nx-a: b\r\n c\r\ncontent-length: 2\r\n\r\nok",
    "bare-lf": b"HTTP/1.1 200 OK\ncontent-length: 2\n\nok",
    "cl-and-te": (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    ),
    "te-and-cl": (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    ),
    "duplicate-differing-cl": (
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!"
    ),
    "negative-cl": b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\nok",
    "cl-overflow": b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\nok",
    "invalid-chunk-size": (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n"
    ),
    "te-gzip-we-would-hide": b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\nok",
    "te-chunked-then-gzip": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\nok",
    "huge-headers": (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 1000) for i in range(70))
        + b"content-length: 2\r\n\r\nok"
    ),
    "one-endless-header": b"HTTP/1.1 200 OK\r\nx-big: " + b"v" * (200 * 1024),
    "too-many-headers": (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"x-h%d: 1\r\n" % i for i in range(300))
        + b"content-length: 2\r\n\r\nok"
    ),
    "unsolicited-101-upgrade": (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    ),
    "unsolicited-101-bare": b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
}


@pytest.mark.parametrize("response", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_malformed_upstream_response_is_502_upstream_protocol_and_connection_closed(
    response: bytes,
) -> None:
    """A malformed or hostile upstream answer becomes 502 `upstream_protocol`; the upstream
    connection is closed and never carries another request."""
    closed: list[bool] = []

    async def script(conn: UpstreamConn) -> None:
        if conn.index == 0:
            if await conn.request() is not None:
                await conn.send(response)
                closed.append(await conn.closed_by_peer())
        else:
            await answer_each(conn, ok_response())

    async with RawUpstream(script) as up, running_sidecar(_config(up.url)) as s:
        async with _client(s) as client:
            r = await client.get("/up/x")
            assert r.status_code == 502
            assert r.headers["x-sidecar-error"] == "upstream_protocol"
            await async_wait_until(lambda: bool(closed))
            assert closed == [True]
            r = await client.get("/up/y")  # a fresh connection, never the poisoned one
            assert r.status_code == 200 and r.text == "ok"
        assert len(up.conns) == 2


async def test_a_second_response_smuggled_after_the_first_closes_the_connection() -> None:
    """Bytes after a complete response (a smuggled second answer) are never served to the next
    request: the first answer is delivered and the connection is dropped."""
    smuggled = ok_response(b"first") + ok_response(b"EVIL!")

    async def script(conn: UpstreamConn) -> None:
        if conn.index == 0:
            if await conn.request() is not None:
                await conn.send(smuggled)
                await conn.closed_by_peer()
        else:
            await answer_each(conn, ok_response(b"second"))

    async with RawUpstream(script) as up, running_sidecar(_config(up.url)) as s:
        async with _client(s) as client:
            assert (await client.get("/up/1")).text == "first"
            assert (await client.get("/up/2")).text == "second"
        assert len(up.conns) == 2


async def test_bytes_on_an_idle_connection_drop_it_from_the_pool() -> None:
    """An upstream that writes on an idle keep-alive connection is confused: that connection is
    closed and the next request uses a new one."""
    spoke = asyncio.Event()

    async def script(conn: UpstreamConn) -> None:
        if conn.index == 0:
            if await conn.request() is not None:
                await conn.send(ok_response(b"first"))
                await spoke.wait()
                await conn.send(ok_response(b"EVIL!"))
                await conn.closed_by_peer()
        else:
            await answer_each(conn, ok_response(b"second"))

    async with RawUpstream(script) as up, running_sidecar(_config(up.url)) as s:
        async with _client(s) as client:
            assert (await client.get("/up/1")).text == "first"
            spoke.set()
            await async_wait_until(lambda: s.describe_upstreams()["up"]["connections"]["idle"] == 0)
            assert (await client.get("/up/2")).text == "second"
        assert len(up.conns) == 2


async def test_upstream_down_is_502_upstream_connect_naming_host_and_port() -> None:
    """Nothing listening: 502 `upstream_connect`, and the body says where the sidecar tried."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # the port is free and nothing listens on it
    async with running_sidecar(_config(f"http://127.0.0.1:{port}")) as s, _client(s) as client:
        r = await client.get("/up/x")
    assert r.status_code == 502
    assert r.headers["x-sidecar-error"] == "upstream_connect"
    assert f"127.0.0.1:{port}" in r.text
    assert "refused" in r.text.lower()


@pytest.fixture
def blackhole() -> Any:
    """A loopback port whose accept queue is full: SYNs are dropped, connects hang."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(srv.getsockname())
        except BlockingIOError:
            pass
        fillers.append(c)
    yield srv.getsockname()[1]
    for c in fillers:
        c.close()
    srv.close()


async def test_connect_timeout_is_502_upstream_connect_within_the_limit(blackhole: int) -> None:
    """An upstream that never completes the TCP handshake fails after `connect_timeout`."""
    cfg = _config(f"http://127.0.0.1:{blackhole}", connect_timeout="300ms", timeout="5s")
    async with running_sidecar(cfg) as s, _client(s) as client:
        t0 = time.monotonic()
        r = await client.get("/up/x")
        took = time.monotonic() - t0
    assert r.status_code == 502
    assert r.headers["x-sidecar-error"] == "upstream_connect"
    assert "timed out after 0.3s" in r.text and f"127.0.0.1:{blackhole}" in r.text
    assert 0.25 <= took < 2.0


async def _stall(conn: UpstreamConn) -> None:
    if await conn.request() is not None:
        await conn.closed_by_peer(30)


async def test_upstream_stalling_before_the_head_is_504_at_the_call_timeout() -> None:
    """An upstream that accepts and never answers costs the app `timeout`, then 504
    `upstream_timeout`; the stalled connection is closed."""
    async with RawUpstream(_stall) as up, running_sidecar(_config(up.url, timeout="500ms")) as s:
        async with _client(s) as client:
            t0 = time.monotonic()
            r = await client.get("/up/x")
            took = time.monotonic() - t0
        assert r.status_code == 504
        assert r.headers["x-sidecar-error"] == "upstream_timeout"
        assert 0.45 <= took < 1.5
        await async_wait_until(lambda: s.describe_upstreams()["up"]["connections"]["busy"] == 0)


async def test_response_header_timeout_is_504_before_the_call_timeout() -> None:
    """`response_header_timeout` bounds the wait for the head on its own, with its own reason."""
    cfg = _config("", timeout="5s", response_header_timeout="300ms")
    async with RawUpstream(_stall) as up:
        cfg["upstreams"]["up"]["url"] = up.url
        async with running_sidecar(cfg) as s, _client(s) as client:
            t0 = time.monotonic()
            r = await client.get("/up/x")
            took = time.monotonic() - t0
    assert r.status_code == 504
    assert r.headers["x-sidecar-error"] == "upstream_timeout"
    assert "response head" in r.text
    assert 0.25 <= took < 1.5


RESETS = {
    "content-length": b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"a" * 5000,
    "chunked": b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1388\r\n" + b"a" * 5000,
    "close-delimited": b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + b"a" * 5000,
}


@pytest.mark.parametrize("framing", list(RESETS))
async def test_upstream_reset_mid_body_cuts_the_app_connection(framing: str) -> None:
    """An upstream that resets mid-body: the app sees a truncated response on a closed
    connection, never a body that looks complete."""
    sent = asyncio.Event()

    async def script(conn: UpstreamConn) -> None:
        if await conn.request() is None:
            return
        await conn.send(RESETS[framing])
        await sent.wait()
        conn.reset()

    async with RawUpstream(script) as up, running_sidecar(_config(up.url)) as s:
        async with _client(s) as client:
            async with client.stream("GET", "/up/x") as r:
                assert r.status_code == 200
                got = b""
                with pytest.raises(httpx.RemoteProtocolError):
                    async for chunk in r.aiter_raw():
                        got += chunk
                        sent.set()
            assert 0 < len(got) <= 5000


async def test_close_delimited_body_ends_cleanly_at_fin() -> None:
    """An upstream body without length or chunking ends when the upstream closes (FIN): the app
    gets all of it, framed."""
    body = b"z" * 300_000

    async def script(conn: UpstreamConn) -> None:
        if await conn.request() is None:
            return
        await conn.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + body)
        conn.writer.close()

    async with RawUpstream(script) as up, running_sidecar(_config(up.url)) as s:
        async with _client(s) as client:
            r = await client.get("/up/x")
    assert r.status_code == 200
    assert r.content == body


async def _race(conn: UpstreamConn) -> None:
    """First connection: answer one request, then close on the next without answering (as if the
    upstream's idle timer fired just as the request was written). Later connections answer."""
    if conn.index == 0:
        if await conn.request() is None:
            return
        await conn.send(ok_response(b"first"))
        await conn.request()
        conn.writer.close()
        return
    await answer_each(conn, ok_response(b"again"))


async def test_keep_alive_race_resends_an_idempotent_request_on_a_fresh_connection() -> None:
    """The upstream closes a reused connection as the request arrives: a GET is sent again once,
    on a new connection, and the app just sees 200."""
    async with RawUpstream(_race) as up, running_sidecar(_config(up.url)) as s:
        async with _client(s) as client:
            assert (await client.get("/up/1")).text == "first"
            r = await client.get("/up/2")
        assert r.status_code == 200 and r.text == "again"
        assert len(up.conns) == 2
        assert [req.target for req in up.conns[1].requests] == ["/2"]


async def test_the_keep_alive_race_resend_takes_a_new_connection_even_from_a_full_pool() -> None:
    """The resend goes out on a new connection even when the pool is full and another call waits
    ahead of it: a connection freed meanwhile is reused by no one's resend (it could be the next
    one the upstream closes), it is swapped for a new one."""
    release, close_now = asyncio.Event(), asyncio.Event()

    async def script(conn: UpstreamConn) -> None:
        if conn.index == 0:  # holds /hold until released, then answers anything
            req = await conn.request()
            if req is None:
                return
            await asyncio.wait_for(release.wait(), 10)
            await conn.send(ok_response(b"held"))
            await answer_each(conn, ok_response(b"zero"))
        elif conn.index == 1:  # answers once, then closes on the next request unanswered
            if await conn.request() is None:
                return
            await conn.send(ok_response(b"first"))
            await conn.request()
            await asyncio.wait_for(close_now.wait(), 10)
            conn.writer.close()
        else:
            await answer_each(conn, ok_response(b"new"))

    def in_flight(s: Sidecar) -> int:
        return int(s.describe_upstreams()["up"]["policies"]["concurrency"]["in_flight"])

    cfg = _config("", pool={"max_connections": 2}, circuit_breaker={"enabled": False})
    async with RawUpstream(script) as up:
        cfg["upstreams"]["up"]["url"] = up.url
        async with running_sidecar(cfg) as s, _client(s) as client:
            hold = asyncio.create_task(client.get("/up/hold"))
            await async_wait_until(lambda: len(up.conns) == 1 and len(up.conns[0].requests) == 1)
            assert (await client.get("/up/1")).text == "first"  # a second connection, now idle
            x = asyncio.create_task(client.get("/up/x"))  # on the idle one, which will close
            await async_wait_until(lambda: len(up.conns[1].requests) == 2)
            y = asyncio.create_task(client.get("/up/y"))  # the pool is full: it waits
            await async_wait_until(lambda: in_flight(s) == 3)
            close_now.set()  # x's connection closes: its slot goes to y, x's resend waits
            await async_wait_until(lambda: len(up.conns) >= 3)  # y's connection
            release.set()  # /hold answered: y's or /hold's connection, freed first, goes to x
            rx, ry, rh = await asyncio.gather(x, y, hold)
        assert (rh.text, ry.text) == ("held", "new")
        assert rx.status_code == 200 and rx.text == "new"
        # the resend went out on a connection of its own, not on the one /hold freed
        assert [r.target for r in up.conns[0].requests] == ["/hold"]
        resent = [c.index for c in up.conns if any(r.target == "/x" for r in c.requests)]
        assert resent == [1, 3]


async def test_keep_alive_race_never_resends_a_post_without_idempotency_key() -> None:
    """A POST may have been acted on before the upstream closed: it is not sent twice; the app
    gets 502 `upstream_reset` and decides. With `Idempotency-Key` it is resent."""
    async with RawUpstream(_race) as up, running_sidecar(_config(up.url)) as s:
        async with _client(s) as client:
            assert (await client.get("/up/1")).text == "first"
            r = await client.post("/up/pay", content=b"{}")
            assert r.status_code == 502
            assert r.headers["x-sidecar-error"] == "upstream_reset"
        async with _client(s) as client:
            r = await client.post("/up/pay", content=b"{}", headers={"Idempotency-Key": "k1"})
            assert r.status_code == 200 and r.text == "again"


async def test_upstream_closing_an_idle_connection_removes_it_from_the_pool() -> None:
    """An idle connection the upstream closes is forgotten at once, not handed to the next call."""

    async def script(conn: UpstreamConn) -> None:
        if conn.index == 0:
            if await conn.request() is not None:
                await conn.send(ok_response(b"first"))
            conn.writer.close()
            return
        await answer_each(conn, ok_response(b"second"))

    async with RawUpstream(script) as up, running_sidecar(_config(up.url)) as s:
        async with _client(s) as client:
            assert (await client.get("/up/1")).text == "first"
            await async_wait_until(lambda: s.describe_upstreams()["up"]["connections"]["idle"] == 0)
            r = await client.get("/up/2")
        assert r.text == "second"
        assert _opened(s) == 2


async def test_pool_full_waits_then_answers_503_overloaded() -> None:
    """Past `pool.max_connections`, a call waits at most `connect_timeout` for a connection,
    then gets 503 `overloaded`: never an unbounded queue."""
    release = asyncio.Event()
    cfg = _config("", connect_timeout="300ms", pool={"max_connections": 1})

    async def answer_first(conn: UpstreamConn) -> None:
        if await conn.request() is None:
            return
        await release.wait()
        await conn.send(ok_response(b"slow"))
        await answer_each(conn, ok_response(b"next"))

    async with RawUpstream(answer_first) as up:
        cfg["upstreams"]["up"]["url"] = up.url
        async with running_sidecar(cfg) as s, _client(s) as a, _client(s) as b:
            slow = asyncio.create_task(a.get("/up/slow"))
            await async_wait_until(lambda: len(up.conns) == 1 and bool(up.conns[0].requests))
            t0 = time.monotonic()
            r = await b.get("/up/x")
            took = time.monotonic() - t0
            assert r.status_code == 503
            assert r.headers["x-sidecar-error"] == "overloaded"
            assert 0.25 <= took < 2.0
            release.set()
            assert (await slow).text == "slow"
            assert (await b.get("/up/x")).text == "next"  # the freed connection serves it
        assert len(up.conns) == 1


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_five_hundred_failing_calls_leak_no_task_and_no_fd() -> None:
    """Failures (refused connects, hostile answers, app disconnects) leave no task or fd behind."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = sock.getsockname()[1]
    sock.close()

    async def hostile(conn: UpstreamConn) -> None:
        while await conn.request() is not None:
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n")

    async def streams(conn: UpstreamConn) -> None:
        while await conn.request() is not None:
            await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10000000\r\n\r\n" + b"a" * 65536)

    async with RawUpstream(hostile) as bad, RawUpstream(streams) as big:
        cfg = {
            "upstreams": {
                # the breaker would answer for them after 5 failures: every call must reach them
                "dead": {"url": f"http://127.0.0.1:{dead}", "circuit_breaker": {"enabled": False}},
                "bad": {"url": bad.url, "circuit_breaker": {"enabled": False}},
                "big": {"url": big.url},
            }
        }
        async with running_sidecar(cfg) as s:
            async with _client(s) as client:  # warm up: first-use allocations are not leaks
                await client.get("/dead/")
                await client.get("/bad/")
            tasks0, fds0 = len(asyncio.all_tasks()), _fds()
            async with _client(s) as client:
                for i in range(500):
                    r = await client.get("/dead/" if i % 2 else "/bad/")
                    assert r.status_code == 502
            for _ in range(20):  # the app hangs up mid-body
                async with _client(s) as client, client.stream("GET", "/big/") as r:
                    await r.aiter_raw().__anext__()
            await async_wait_until(
                lambda: s.describe_upstreams()["big"]["connections"]["busy"] == 0
            )
            await async_wait_until(lambda: len(s.http.connections) == 0 if s.http else False)
            await async_wait_until(lambda: len(asyncio.all_tasks()) <= tasks0)
            await async_wait_until(lambda: _fds() <= fds0)
