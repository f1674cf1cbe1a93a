"""HTTP/1.1 as an app sees it through the sidecar, checked byte for byte on the app's connection.

Keep-alive, pipelining, HTTP/1.0, HEAD/204/304 framing, ``Expect: 100-continue``, chunked
uploads, ``Connection: close``, hop-by-hop hygiene both ways, ``X-Forwarded-For`` and the idle
timeout. Each test reads the raw bytes the sidecar wrote, so a framing slip shows up as a
desynchronised next response rather than being smoothed over by a client library.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from sidecar.testing import FakeUpstream, async_wait_until, running_sidecar

from .raw_http import RawConnection, get
from .raw_upstream import RawUpstream, UpstreamConn, ok_response

H = "Host: 127.0.0.1\r\n"


async def _semantic_handler(request: web.Request) -> web.StreamResponse:
    """Answers by path: what each test needs from a well-behaved upstream."""
    path = request.path
    if path.startswith("/slow/"):
        await asyncio.sleep(float(path.rsplit("/", 1)[1]))
        return web.Response(text=f"slow {path}")
    if path == "/204":
        return web.Response(status=204)
    if path == "/304":
        return web.Response(status=304, headers={"etag": '"v1"'})
    if path == "/stream":
        resp = web.StreamResponse()  # no length: chunked to a 1.1 app, close-delimited to 1.0
        await resp.prepare(request)
        for i in range(3):
            await resp.write(b"part%d;" % i)
            await asyncio.sleep(0.05)  # so the head reaches the sidecar before the body ends
        await resp.write_eof()
        return resp
    if path == "/echo":
        body = await request.read()
        return web.Response(body=body, headers={"x-got-length": str(len(body))})
    return web.Response(text=f"path={request.path_qs}")


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(_semantic_handler) as up:
        yield up


def _cfg(up: Any, **http: Any) -> dict[str, Any]:
    return {
        "http": {"address": "127.0.0.1:0", **http},
        "upstreams": {"up": {"url": up.url}},
    }


async def test_many_requests_reuse_one_app_connection(upstream: FakeUpstream) -> None:
    """An app's keep-alive connection carries request after request, with one socket open."""
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        for i in range(50):
            await c.send(get(f"/up/n{i}"))
            resp = await c.response()
            assert (resp.status, resp.body) == (200, f"path=/n{i}".encode())
            assert resp.header("connection") is None
        assert s.http is not None and len(s.http.connections) == 1


async def test_pipelined_requests_are_answered_in_order_and_complete(
    upstream: FakeUpstream,
) -> None:
    """Requests written back to back are answered in the order sent, even when a later one is
    quicker upstream, each response whole."""
    batch = (
        get("/up/slow/0.3")
        + get("/up/fast")
        + f"POST /up/echo HTTP/1.1\r\n{H}Content-Length: 5\r\n\r\nhello".encode()
        + get("/up/stream")
        + get("/up/204")
        + f"HEAD /up/head HTTP/1.1\r\n{H}\r\n".encode()
        + get("/up/last")
    )
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(batch)
        slow, fast, echo, stream = [await c.response() for _ in range(4)]
        no_content = await c.response()
        head = await c.response(head=True)
        last = await c.response()
    assert slow.body == b"slow /slow/0.3"
    assert fast.body == b"path=/fast"
    assert echo.body == b"hello"
    assert (stream.framing, stream.body) == ("chunked", b"part0;part1;part2;")
    assert (no_content.status, no_content.body) == (204, b"")
    assert head.header("content-length") == str(len("path=/head"))
    assert last.body == b"path=/last"


async def test_deep_pipelining_past_the_queue_bound_still_answers_everything(
    upstream: FakeUpstream,
) -> None:
    """A hundred requests in one write: reading pauses and resumes, and all get answered."""
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(b"".join(get(f"/up/p{i}") for i in range(100)))
        bodies = [(await c.response()).body for _ in range(100)]
    assert bodies == [f"path=/p{i}".encode() for i in range(100)]


async def test_http10_without_keep_alive_gets_one_answer_and_a_close(
    upstream: FakeUpstream,
) -> None:
    """An HTTP/1.0 app (no Host needed) gets its answer, `Connection: close` and the close."""
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(b"GET /up/old HTTP/1.0\r\n\r\n")
        resp = await c.response()
        assert (resp.status, resp.body) == (200, b"path=/old")
        assert resp.header("connection") == "close"
        assert await c.closed()


async def test_http10_keep_alive_is_honoured_when_asked(upstream: FakeUpstream) -> None:
    """`Connection: keep-alive` from an HTTP/1.0 app keeps the connection, and says so."""
    req = b"GET /up/a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        for _ in range(3):
            await c.send(req)
            resp = await c.response()
            assert resp.status == 200 and resp.header("connection") == "keep-alive"


async def test_http10_gets_a_body_of_unknown_length_close_delimited(
    upstream: FakeUpstream,
) -> None:
    """HTTP/1.0 has no chunked coding: a streamed answer is sent until the close, even if the
    app asked for keep-alive."""
    req = b"GET /up/stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(req)
        resp = await c.response()
    assert resp.framing == "close"
    assert resp.header("transfer-encoding") is None
    assert resp.body == b"part0;part1;part2;"


async def test_head_keeps_content_length_and_sends_no_body(upstream: FakeUpstream) -> None:
    """HEAD answers carry the GET's Content-Length and no body; the next request still parses."""
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(f"HEAD /up/doc HTTP/1.1\r\n{H}\r\n".encode())
        head = await c.response(head=True)
        await c.send(get("/up/doc"))
        after = await c.response()
    assert head.status == 200 and head.header("content-length") == str(len("path=/doc"))
    assert after.body == b"path=/doc"


@pytest.mark.parametrize("path", ["/up/204", "/up/304"])
async def test_204_and_304_carry_no_body_and_the_connection_continues(
    upstream: FakeUpstream, path: str
) -> None:
    """204 and 304 have no body and no chunked framing; the next response is read correctly."""
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(get(path) + get("/up/next"))
        first = await c.response()
        nxt = await c.response()
    assert first.status == int(path[-3:])
    assert first.header("transfer-encoding") is None
    assert first.header("content-length") in (None, "0") or first.status == 304
    assert nxt.body == b"path=/next"


async def test_expect_100_continue_is_sent_when_the_body_is_wanted(
    upstream: FakeUpstream,
) -> None:
    """The app gets `100 Continue` once the upstream call reads the body, then the answer."""
    head = f"POST /up/echo HTTP/1.1\r\n{H}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(head.encode())
        interim = await c.response(interim=True)
        assert interim.status == 100
        await c.send(b"hello")
        resp = await c.response()
        assert (resp.status, resp.body) == (200, b"hello")
        await c.send(get("/up/again"))
        assert (await c.response()).body == b"path=/again"
    assert "expect" not in {k.lower() for k in upstream.requests[0].headers}


async def test_expect_100_continue_to_no_route_is_answered_without_100(
    upstream: FakeUpstream,
) -> None:
    """An early 404 is sent without `100 Continue`, so the app never sends the unwanted body,
    and the connection (with that body possibly in flight) is closed."""
    head = f"POST /nope/x HTTP/1.1\r\n{H}Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(head.encode())
        resp = await c.response(interim=True)
        assert resp.status == 404 and resp.header("x-sidecar-error") == "no_route"
        assert resp.header("connection") == "close"
        await c.send(b"hello")  # an app that sends anyway must not get a reset in its face
        assert await c.closed()


async def test_chunked_upload_with_extensions_and_trailer_arrives_whole(
    upstream: FakeUpstream,
) -> None:
    """A chunked body (extensions, a trailer, sent in pieces) reaches the upstream decoded, and
    the trailer does not turn into a request header."""
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(
            f"POST /up/echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n"
            "X-Before: 1\r\n\r\n".encode()
        )
        await c.send(b"5;name=value\r\nhello\r\n")
        await c.send(b"1\r\n \r\n")
        await c.send(b"5\r\nworld\r\n0\r\nX-Trailer: sneaky\r\n\r\n")
        resp = await c.response()
        assert resp.body == b"hello world"
        await c.send(get("/up/after"))
        assert (await c.response()).body == b"path=/after"
    seen = {k.lower() for k in upstream.requests[0].headers}
    assert "x-before" in seen and "x-trailer" not in seen


async def test_connection_close_is_honoured_even_while_the_body_streams(
    upstream: FakeUpstream,
) -> None:
    """`Connection: close` ends the connection after the answer, and a body that arrives after
    the head is still read and forwarded whole."""
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(
            f"POST /up/echo HTTP/1.1\r\n{H}Connection: close\r\n"
            "Content-Length: 200000\r\n\r\n".encode()
        )
        for _ in range(4):
            await c.send(b"z" * 50000)
        resp = await c.response()
        assert resp.status == 200 and len(resp.body) == 200000
        assert resp.header("connection") == "close"
        assert await c.closed()


async def test_request_after_connection_close_in_the_same_write_is_ignored(
    upstream: FakeUpstream,
) -> None:
    """Bytes after a `Connection: close` request are not a second request (nor a 400)."""
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(get("/up/one", extra="Connection: close\r\n") + get("/up/two"))
        resp = await c.response()
        assert resp.body == b"path=/one" and resp.header("connection") == "close"
        assert await c.closed()
    assert [r.path_qs for r in upstream.requests] == ["/one"]


async def test_hop_by_hop_headers_are_dropped_both_ways() -> None:
    """Connection-specific headers (the fixed set and those named in `Connection`) stop at the
    sidecar in both directions; end-to-end headers pass."""
    response = ok_response(
        b"ok",
        "connection: x-up-private, keep-alive\r\nx-up-private: s\r\nkeep-alive: timeout=30\r\n"
        "proxy-authenticate: Basic\r\nupgrade: h2c\r\ntrailer: x-t\r\nx-up-kept: 1\r\n",
    )
    seen: list[dict[str, str]] = []

    async def script(conn: UpstreamConn) -> None:
        while (req := await conn.request()) is not None:
            seen.append(dict(req.headers))
            await conn.send(response)

    request = (
        f"GET /up/x HTTP/1.1\r\n{H}Connection: keep-alive, X-App-Private\r\n"
        "X-App-Private: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x-t\r\n"
        "Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nUpgrade: websocket\r\n"
        "X-App-Kept: 1\r\n\r\n"
    )
    async with RawUpstream(script) as up, running_sidecar(_cfg(up)) as s:
        async with await RawConnection.open(s.http_port) as c:
            await c.send(request.encode())
            resp = await c.response()
    hop = {"connection", "keep-alive", "te", "trailer", "proxy-authorization"}
    hop |= {"proxy-connection", "upgrade", "x-app-private"}
    assert seen[0]["x-app-kept"] == "1"
    assert not hop & set(seen[0])
    got = {k for k, _ in resp.headers}
    assert resp.header("x-up-kept") == "1"
    assert not {"x-up-private", "keep-alive", "proxy-authenticate", "upgrade", "trailer"} & got


async def test_x_forwarded_for_is_appended_to_what_the_app_sent(upstream: FakeUpstream) -> None:
    """`X-Forwarded-For` gets the app's address appended, never replaced or trusted alone."""
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(get("/up/x", extra="X-Forwarded-For: 203.0.113.7\r\n"))
        await c.response()
        await c.send(get("/up/y"))
        await c.response()
    assert upstream.requests[0].headers["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    assert upstream.requests[1].headers["X-Forwarded-For"] == "127.0.0.1"


async def test_an_upgrade_request_without_body_is_served_as_plain_http(
    upstream: FakeUpstream,
) -> None:
    """`Connection: upgrade` is ignored as RFC 9110 allows: a normal answer, no 101, and the
    connection goes on (curl --http2 on http:// works)."""
    upgrade = get("/up/u", extra="Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n")
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(upgrade + get("/up/after"))
        first = await c.response()
        second = await c.response()
    assert (first.status, first.body) == (200, b"path=/u")
    assert second.body == b"path=/after"
    assert "upgrade" not in {k.lower() for k in upstream.requests[0].headers}


async def test_idle_keep_alive_connection_is_closed_after_idle_timeout(
    upstream: FakeUpstream,
) -> None:
    """A keep-alive connection left idle is closed after `http.idle_timeout`, not before."""
    loop = asyncio.get_running_loop()
    cfg = _cfg(upstream, idle_timeout="1s")
    async with running_sidecar(cfg) as s, await RawConnection.open(s.http_port) as c:
        await c.send(get("/up/x"))
        assert (await c.response()).status == 200
        idle_since = loop.time()
        assert await c.closed(timeout=5.0)
        waited = loop.time() - idle_since
        assert s.http is not None
        await async_wait_until(lambda: not s.http.connections, 2.0)  # type: ignore[union-attr]
    assert 0.9 <= waited < 3.0, waited


async def test_a_call_longer_than_the_idle_timeout_is_not_cut(upstream: FakeUpstream) -> None:
    """The idle timer only runs between requests: a slow answer is delivered, and the connection
    is usable right after it."""
    cfg = _cfg(upstream, idle_timeout="1s", header_timeout="1s")
    async with running_sidecar(cfg) as s, await RawConnection.open(s.http_port) as c:
        await c.send(get("/up/slow/1.6"))
        assert (await c.response()).body == b"slow /slow/1.6"
        await c.send(get("/up/right-after"))
        assert (await c.response()).body == b"path=/right-after"


async def test_a_large_body_nobody_reads_does_not_stall_the_connection(
    upstream: FakeUpstream,
) -> None:
    """A 404 to a big upload (whose reading was paused) either closes the connection or goes on
    to the next request: it never hangs."""
    body = b"b" * (600 * 1024)
    req = f"POST /nope/ HTTP/1.1\r\n{H}Content-Length: {len(body)}\r\n\r\n".encode() + body
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        c.writer.write(req + get("/up/next"))
        first = await c.response()
        assert first.status == 404
        if first.header("connection") == "close":
            assert await c.closed()
        else:
            assert (await c.response()).body == b"path=/next"


async def test_trailer_in_a_body_that_arrives_with_its_head_is_not_forwarded(
    upstream: FakeUpstream,
) -> None:
    """A whole chunked request in one write: its trailer never becomes an upstream header."""
    req = (
        f"POST /up/echo HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nX-Trailer: sneaky\r\nHost: evil.example\r\n\r\n"
    )
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(req.encode())
        assert (await c.response()).body == b"abc"
    seen = [k.lower() for k in upstream.requests[0].headers]
    assert "x-trailer" not in seen and seen.count("host") == 1


async def test_x_forwarded_for_sent_twice_keeps_every_hop(upstream: FakeUpstream) -> None:
    """Two `X-Forwarded-For` lines are one list (RFC 9110 §5.3): every hop is kept, ours last."""
    extra = "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 198.51.100.2\r\n"
    async with running_sidecar(_cfg(upstream)) as s, await RawConnection.open(s.http_port) as c:
        await c.send(get("/up/x", extra=extra))
        await c.response()
    xff = [v for k, v in upstream.requests[0].raw_headers if k.lower() == "x-forwarded-for"]
    assert ", ".join(xff) == "203.0.113.7, 198.51.100.2, 127.0.0.1"
