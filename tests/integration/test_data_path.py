"""The HTTP data path end to end: app → sidecar → upstream and back, with real clients.

Clients are httpx, curl and raw sockets (where the exact framing matters); upstreams are aiohttp
servers or scripted raw sockets on 127.0.0.1. Large-body tests run the sidecar as a child process
(``sidecar run``, uvloop) and read its memory from ``/proc``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from sidecar.app import Sidecar
from sidecar.testing import FakeUpstream, SidecarProcess, async_wait_until, running_sidecar
from tests.integration.raw_upstream import RawUpstream, UpstreamConn, answer_each, ok_response

MB = 1024 * 1024


def _url(s: Sidecar, path: str) -> str:
    return f"http://127.0.0.1:{s.http_port}{path}"


def _pool(s: Sidecar, upstream: str = "up") -> dict[str, Any]:
    info: dict[str, Any] = s.describe_upstreams()[upstream]
    return info


async def _echo(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path": request.path_qs,
            "body": body.decode(),
            "te": request.headers.get("Transfer-Encoding"),
            "cl": request.headers.get("Content-Length"),
        },
        headers={"x-from-upstream": "1"},
    )


async def test_get_and_post_pass_through_with_httpx() -> None:
    """GET and POST reach the upstream with method, path and body intact; its answer and headers
    come back."""
    async with (
        FakeUpstream(_echo) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as client:
            g = await client.get(_url(s, "/up/items?id=7"))
            p = await client.post(_url(s, "/up/items"), content=b"hello")
    assert g.status_code == 200 and g.headers["x-from-upstream"] == "1"
    assert g.json()["method"] == "GET" and g.json()["path"] == "/items?id=7"
    assert p.json() == {"method": "POST", "path": "/items", "body": "hello", "te": None, "cl": "5"}


async def _run(*cmd: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return proc.returncode, out


async def test_get_and_post_with_curl() -> None:
    """curl, the tool people debug with, works through the sidecar both ways."""
    async with (
        FakeUpstream(_echo) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        _, got = await _run("curl", "-sS", "--max-time", "10", _url(s, "/up/a?x=1"))
        _, posted = await _run(
            "curl", "-sS", "--max-time", "10", "--data-binary", "from-curl", _url(s, "/up/b")
        )
    assert b'"path": "/a?x=1"' in got
    assert b'"body": "from-curl"' in posted and b'"method": "POST"' in posted


async def test_response_hop_by_hop_headers_are_dropped() -> None:
    """Headers that belong to the upstream connection (and those its `Connection` names) never
    reach the app; end-to-end headers do."""
    response = ok_response(
        b"ok",
        "connection: x-private\r\nx-private: secret\r\nkeep-alive: timeout=30\r\nx-kept: 1\r\n",
    )

    async def script(conn: UpstreamConn) -> None:
        await answer_each(conn, response)

    async with (
        RawUpstream(script) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as client:
            r = await client.get(_url(s, "/up/"))
    assert r.headers["x-kept"] == "1"
    assert "x-private" not in r.headers and "keep-alive" not in r.headers


async def _chunks(n: int, size: int) -> AsyncIterator[bytes]:
    block = b"c" * size
    for _ in range(n):
        yield block


async def test_chunked_both_ways() -> None:
    """A body of unknown length goes up chunked and a chunked answer comes back chunked."""

    async def handler(request: web.Request) -> web.StreamResponse:
        got = await request.read()
        te = request.headers.get("Transfer-Encoding", "")
        resp = web.StreamResponse(headers={"x-got": str(len(got)), "x-te": te})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(8):  # more than one read's worth: the body streams, it is not collected
            await resp.write(b"%d" % i * (128 * 1024))
        await resp.write_eof()
        return resp

    async with (
        FakeUpstream(handler) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as client:
            r = await client.post(_url(s, "/up/"), content=_chunks(10, 1000))
    assert r.status_code == 200
    assert r.headers["x-got"] == "10000" and r.headers["x-te"] == "chunked"
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.content == b"".join(b"%d" % i * (128 * 1024) for i in range(8))


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\n",
    ],
    ids=["http11-connection-close", "http10"],
)
async def test_close_delimited_response_arrives_whole_and_framed(head: bytes) -> None:
    """An upstream body with neither length nor chunking ends when the upstream closes (FIN): the
    app gets all of it, re-framed, and the next call uses a new upstream connection."""
    body = os.urandom(300_000)

    async def script(conn: UpstreamConn) -> None:
        if await conn.request() is not None:
            await conn.send(head + body)
            conn.writer.close()

    async with (
        RawUpstream(script) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as client:
            r1 = await client.get(_url(s, "/up/1"))
            r2 = await client.get(_url(s, "/up/2"))
    assert r1.status_code == 200 and r1.content == body
    assert r2.content == body
    assert len(up.conns) == 2


def _peer_recorder(seen: list[Any]) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        seen.append(request.transport.get_extra_info("peername"))
        if request.path == "/big":
            return web.Response(body=b"b" * (2 * MB))
        return web.Response(text="hello")

    return handler


async def test_sequential_requests_reuse_one_upstream_connection() -> None:
    """Keep-alive toward the upstream: twenty calls in a row ride one upstream connection, also
    when the app opens a new connection for each."""
    peers: list[Any] = []
    async with (
        FakeUpstream(_peer_recorder(peers)) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as client:
            for i in range(10):
                r = await client.get(_url(s, f"/up/{i}"))
                assert r.text == "hello"
        for i in range(10):
            async with httpx.AsyncClient() as client:
                assert (await client.get(_url(s, f"/up/{i}"))).text == "hello"
        metrics = s.metrics.exposition().decode()
    assert len(peers) == 20 and len(set(peers)) == 1
    assert 'sidecar_upstream_connections_opened_total{upstream="up"} 1.0' in metrics


async def test_a_finished_streamed_body_returns_its_connection_to_the_pool() -> None:
    """After a body too big for one read is fully relayed, its connection is idle in the pool."""
    peers: list[Any] = []
    async with (
        FakeUpstream(_peer_recorder(peers)) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                r = await client.get(_url(s, "/up/big"))
                assert len(r.content) == 2 * MB
                await async_wait_until(lambda: _pool(s)["connections"]["idle"] == 1)
                assert _pool(s)["connections"]["busy"] == 0
    assert len(set(peers)) == 1


async def test_head_204_and_304_are_framed_without_body_and_keep_the_connection() -> None:
    """HEAD, 204 and 304 carry no body: the app gets the headers (HEAD keeps the length) and the
    upstream connection carries the next call."""
    peers: list[Any] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        if request.path == "/204":
            return web.Response(status=204)
        if request.path == "/304":
            return web.Response(status=304, headers={"etag": '"v1"'})
        return web.Response(body=b"0123456789")

    async with (
        FakeUpstream(handler) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as client:
            h = await client.head(_url(s, "/up/doc"))
            n = await client.get(_url(s, "/up/204"))
            m = await client.get(_url(s, "/up/304"), headers={"if-none-match": '"v1"'})
            g = await client.get(_url(s, "/up/doc"))
    assert h.status_code == 200 and h.headers["content-length"] == "10" and h.content == b""
    assert n.status_code == 204 and n.content == b"" and "content-length" not in n.headers
    assert m.status_code == 304 and m.content == b"" and m.headers["etag"] == '"v1"'
    assert g.content == b"0123456789"
    assert len(set(peers)) == 1


async def test_head_answered_with_chunked_framing_does_not_desync_the_connection() -> None:
    """A HEAD answer announcing a chunked body has no body: the next response on that upstream
    connection is read correctly."""

    async def script(conn: UpstreamConn) -> None:
        while (req := await conn.request()) is not None:
            if req.method == "HEAD":
                await conn.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            else:
                await conn.send(ok_response(b"after-head"))

    async with (
        RawUpstream(script) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as client:
            h = await client.head(_url(s, "/up/"))
            g = await client.get(_url(s, "/up/"))
    assert h.status_code == 200 and h.content == b""
    assert g.content == b"after-head"
    assert len(up.conns) == 1


async def test_interim_1xx_responses_from_the_upstream_are_skipped() -> None:
    """`100 Continue` and `103 Early Hints` from the upstream are not relayed: the app reads
    exactly one response, the final one."""
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\n\r\n"
    )

    async def script(conn: UpstreamConn) -> None:
        await answer_each(conn, interim + ok_response(b"final"))

    async with (
        RawUpstream(script) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", s.http_port)
        writer.write(b"GET /up/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.count(b"HTTP/1.1") == 1
    assert raw.endswith(b"\r\n\r\nfinal")


async def _stream_body(conn: UpstreamConn, total: int, sent: list[int]) -> None:
    """Send a response of ``total`` bytes as fast as the sidecar takes it, counting."""
    if await conn.request() is None:
        return
    await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
    block = b"s" * (256 * 1024)
    left = total
    while left:
        n = min(left, len(block))
        await conn.send(block[:n])
        left -= n
        sent[0] += n


async def _settled(counter: list[int], limit: float = 15.0) -> None:
    """Wait (bounded) until ``counter[0]`` stops growing for 0.3 s."""
    last, still = -1, 0
    async with asyncio.timeout(limit):
        while still < 6:
            await asyncio.sleep(0.05)
            still = still + 1 if counter[0] == last else 0
            last = counter[0]


async def test_slow_reading_app_does_not_make_the_sidecar_buffer_the_body() -> None:
    """Back-pressure: while the app reads nothing, the upstream can only send what socket buffers
    and a small sidecar buffer hold; when the app reads, the rest flows, intact."""
    total = 256 * MB
    sent = [0]

    async def script(conn: UpstreamConn) -> None:
        await _stream_body(conn, total, sent)

    async with (
        RawUpstream(script) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        loop = asyncio.get_running_loop()
        app = socket.socket()
        app.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        app.setblocking(False)
        await loop.sock_connect(app, ("127.0.0.1", s.http_port))
        await loop.sock_sendall(app, b"GET /up/ HTTP/1.1\r\nhost: x\r\n\r\n")
        await _settled(sent)
        stalled_at = sent[0]
        # kernel buffers on three sockets are a few MB each; the sidecar itself holds < 1 MB
        assert stalled_at < 64 * MB, stalled_at
        received = 0
        async with asyncio.timeout(60):
            while received < total:
                data = await loop.sock_recv(app, 1 * MB)
                assert data
                received += len(data)
        app.close()
    assert sent[0] == total
    assert received >= total  # the head plus every body byte


async def test_an_app_pipelining_and_never_reading_is_not_answered_into_memory() -> None:
    """Whole answers back-pressure too: an app that pipelines a thousand requests for 32 KB
    answers (each arrives whole, head and body in one read, and is written whole) and reads none
    gets no more written once the write buffer is full (its other requests wait, unsent
    upstream, until it reads), and is cut off after the idle timeout."""
    body = b"x" * (32 * 1024)

    async def script(conn: UpstreamConn) -> None:
        await answer_each(conn, ok_response(body))

    cfg = {"http": {"idle_timeout": "1s"}, "upstreams": {"up": {"url": ""}}}
    async with RawUpstream(script) as up:
        cfg["upstreams"]["up"]["url"] = up.url
        async with running_sidecar(cfg) as s:
            assert s.http is not None
            loop = asyncio.get_running_loop()
            app = socket.socket()
            app.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            app.setblocking(False)
            await loop.sock_connect(app, ("127.0.0.1", s.http_port))
            await loop.sock_sendall(app, b"GET /up/big HTTP/1.1\r\nhost: x\r\n\r\n" * 1000)
            await async_wait_until(lambda: len(s.http.connections) == 1)
            (conn,) = s.http.connections
            # once the kernel's socket buffers are full, the worker waits for the app to read,
            # requests still unanswered: the sidecar itself holds at most a couple of answers
            await async_wait_until(lambda: conn.write_paused and conn._drain_waiter is not None)
            answered = sum(len(c.requests) for c in up.conns)
            assert answered < 1000, answered
            assert conn.transport is not None
            assert conn.transport.get_write_buffer_size() <= 256 * 1024
            # and it is cut off after the idle timeout, its unread answers dropped
            await async_wait_until(lambda: not s.http.connections, 10)
            app.close()
        assert sum(len(c.requests) for c in up.conns) == answered


async def test_app_hanging_up_mid_body_closes_the_upstream_connection() -> None:
    """An app that disconnects mid-body: the upstream connection is closed, never reused for a
    half-read response."""
    cut = asyncio.Event()

    async def script(conn: UpstreamConn) -> None:
        if conn.index == 0:
            try:
                await _stream_body(conn, 100 * MB, [0])
            except ConnectionError:
                cut.set()
            if await conn.closed_by_peer():
                cut.set()
            return
        await answer_each(conn, ok_response(b"fresh"))

    async with (
        RawUpstream(script) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as client, client.stream("GET", _url(s, "/up/")) as r:
            await r.aiter_raw().__anext__()
        await asyncio.wait_for(cut.wait(), 10)
        await async_wait_until(lambda: _pool(s)["connections"]["busy"] == 0)
        assert _pool(s)["connections"]["idle"] == 0
        async with httpx.AsyncClient() as client:
            assert (await client.get(_url(s, "/up/"))).text == "fresh"
    assert len(up.conns) == 2


async def test_early_upstream_answer_to_a_streaming_upload_is_relayed_and_not_reused() -> None:
    """An upstream that answers (413, say) before reading the whole upload: the app gets that
    answer, and the half-written connection is not used again."""

    async def script(conn: UpstreamConn) -> None:
        if conn.index == 0:
            await conn.reader.readuntil(b"\r\n\r\n")
            await conn.send(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big!")
            await conn.closed_by_peer()
            return
        await answer_each(conn, ok_response(b"fresh"))

    async with (
        RawUpstream(script) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.post(_url(s, "/up/"), content=_chunks(64, 64 * 1024))
            assert r.status_code == 413 and r.text == "too big!"
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(_url(s, "/up/"))).text == "fresh"
    assert len(up.conns) == 2


async def test_reload_with_a_new_url_moves_traffic_and_closes_the_old_pool(tmp_path: Path) -> None:
    """A reload that changes an upstream's URL sends new calls to the new address and closes the
    idle connections to the old one."""
    old_closed = asyncio.Event()

    async def old(conn: UpstreamConn) -> None:
        await answer_each(conn, ok_response(b"old"))
        old_closed.set()

    async def new(conn: UpstreamConn) -> None:
        await answer_each(conn, ok_response(b"new"))

    async with RawUpstream(old) as a, RawUpstream(new) as b:
        path = tmp_path / "sidecar.yaml"

        def write(url: str) -> str:
            text = (
                "admin: {address: 127.0.0.1:0}\nhttp: {address: 127.0.0.1:0}\n"
                "grpc: {address: 127.0.0.1:0}\n"
                f"upstreams: {{up: {{url: '{url}'}}}}\n"
            )
            path.write_text(text)
            return text

        async with running_sidecar(write(a.url), config_path=str(path)) as s:
            async with httpx.AsyncClient() as client:
                assert (await client.get(_url(s, "/up/"))).text == "old"
                write(b.url)
                assert await s.reload()
                await asyncio.wait_for(old_closed.wait(), 10)
                assert (await client.get(_url(s, "/up/"))).text == "new"
                assert _pool(s)["address"] == f"127.0.0.1:{b.port}"


# --- large bodies through a sidecar process -------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def _big_upstream(size: int) -> web.Application:
    block = bytes(range(256)) * 4096  # 1 MiB

    async def sink(request: web.Request) -> web.StreamResponse:
        digest, n = hashlib.sha256(), 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            n += len(chunk)
        return web.json_response(
            {
                "bytes": n,
                "sha256": digest.hexdigest(),
                "te": request.headers.get("Transfer-Encoding"),
            }
        )

    async def source(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        if request.query.get("chunked"):
            resp.enable_chunked_encoding()
        else:
            resp.content_length = size
        await resp.prepare(request)
        for _ in range(size // len(block)):
            await resp.write(block)
        await resp.write_eof()
        return resp

    app = web.Application(client_max_size=1 << 34)
    app.router.add_route("*", "/sink", sink)
    app.router.add_get("/source", source)
    return app


async def test_fifty_megabytes_each_way_without_memory_growing_with_size(tmp_path: Path) -> None:
    """Large bodies stream both ways, with and without a length, through `sidecar run` while its
    memory stays flat: 200 MB relayed, peak RSS grows by less than 30 MB."""
    size = 50 * MB
    block = bytes(range(256)) * 4096
    expected = hashlib.sha256(block * (size // len(block))).hexdigest()
    upload = tmp_path / "upload.bin"
    upload.write_bytes(block * (size // len(block)))

    runner = web.AppRunner(_big_upstream(size), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cfg = {
        # the stop below only ends the process: no 2 s wait for the app to go quiet first
        "shutdown": {"app_quiet_period": "0s"},
        "upstreams": {"big": {"url": f"http://127.0.0.1:{port}", "timeout": "60s"}},
    }
    proc = await asyncio.to_thread(SidecarProcess(cfg).start)
    try:
        pid = proc.proc.pid  # type: ignore[union-attr]
        base = f"{proc.http_url}/big"
        async with httpx.AsyncClient(timeout=60) as client:
            assert (await client.get(f"{base}/sink")).status_code == 200  # warm up
            before = _status(pid)
            fds_before = len(os.listdir(f"/proc/{pid}/fd"))

            async def gen() -> AsyncIterator[bytes]:
                for _ in range(size // len(block)):
                    yield block

            up_chunked = (await client.post(f"{base}/sink", content=gen())).json()
            up_sized = (
                await client.post(
                    f"{base}/sink", content=gen(), headers={"content-length": str(size)}
                )
            ).json()
            digest, n = hashlib.sha256(), 0
            async with client.stream("GET", f"{base}/source?chunked=1") as r:
                assert r.headers["transfer-encoding"] == "chunked"
                async for chunk in r.aiter_raw():
                    digest.update(chunk)
                    n += len(chunk)
            down_chunked = (n, digest.hexdigest())
        _, curl_up = await _run(
            "curl", "-sS", "--max-time", "60", "-T", str(upload), f"{base}/sink"
        )
        _, curl_down = await _run(
            "curl",
            "-sS",
            "--max-time",
            "60",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            f"{base}/source",
        )
        after = _status(pid)
        fds_after = len(os.listdir(f"/proc/{pid}/fd"))
    finally:
        await asyncio.to_thread(proc.terminate)
        await runner.cleanup()
    assert up_chunked == {"bytes": size, "sha256": expected, "te": "chunked"}
    assert up_sized == {"bytes": size, "sha256": expected, "te": None}
    assert b'"bytes": %d' % size in curl_up
    assert down_chunked == (size, expected)
    assert curl_down == b"200 %d" % size
    growth = after["VmHWM"] - before["VmRSS"]
    assert growth < 30 * MB, f"sidecar peak RSS grew by {growth / MB:.1f} MB"
    assert fds_after <= fds_before + 2  # at most the pooled upstream connections
