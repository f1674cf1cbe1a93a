"""Pipelined requests on one app connection, answered inside the reads that bring them.

The worker of an app connection runs in the read that brought its request, and a call resumes in
the read that brought its upstream's answer. These tests pile requests into one connection (one
write, odd slices, byte by byte) against a real ``sidecar run`` child process (the build the suite
runs under), with an upstream that answers in every shape HTTP/1.1 allows (whole, byte by byte,
behind interim 1xx answers, chunked, HEAD), and check that the answers come back whole and in
order, that a malformed request is refused after them and closes the connection, and that the
upstream pool ends with no connection busy and no extra one opened.
"""

from __future__ import annotations

import asyncio

import pytest

from sidecar.testing import SidecarProcess
from tests.integration.pool_state import settled_pool
from tests.integration.raw_http import RawConnection
from tests.integration.raw_upstream import RawUpstream, UpstreamConn

WAIT = 10.0


def _answer(target: str, body: bytes, method: str) -> bytes:
    """What the upstream sends for one request: the shape is named by the path's first letter."""
    payload = f"{method} {target}|".encode() + body
    shape = target[1:2]
    if shape == "c":  # chunked, in three chunks
        thirds = [payload[: len(payload) // 3], payload[len(payload) // 3 :], b"!"]
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in thirds if c)
        return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nx-shape: %s\r\ncontent-length: %d\r\n\r\n" % (
        shape.encode(),
        len(payload),
    )
    if method == "HEAD":
        return head
    if shape == "i":  # interim answers first
        return b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n" + (
            head + payload
        )
    return head + payload


def _expected(target: str, body: bytes, method: str) -> bytes:
    payload = f"{method} {target}|".encode() + body
    return payload + b"!" if target[1:2] == "c" else payload


async def _script(conn: UpstreamConn) -> None:
    while (req := await conn.request()) is not None:
        data = _answer(req.target, req.body, req.method)
        if req.target[1:2] == "b":  # byte by byte
            for i in range(len(data)):
                await conn.send(data[i : i + 1])
        else:
            await conn.send(data)


def _request(method: str, path: str, body: bytes | None = None, chunked: bool = False) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: app\r\n"
    if chunked:
        assert body is not None
        half = len(body) // 2
        framed = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            half,
            body[:half],
            len(body) - half,
            body[half:],
        )
        return (head + "transfer-encoding: chunked\r\n\r\n").encode() + framed
    if body is None:
        return (head + "\r\n").encode()
    return (head + f"content-length: {len(body)}\r\n\r\n").encode() + body


#: (method, path, body, chunked request body); the answers' expected bodies follow from them
CALLS: list[tuple[str, str, bytes | None, bool]] = [
    ("GET", "/up/w1", None, False),
    ("POST", "/up/b2", b"body-two", False),
    ("GET", "/nope", None, False),  # refused by the sidecar itself (404), between upstream calls
    ("POST", "/up/i3", b"x" * 3000, False),
    ("PUT", "/up/c4", b"chunky" * 50, True),
    ("HEAD", "/up/w5", None, False),
    ("POST", "/up/c6", b"", False),
    ("GET", "/up/b7", None, False),
    ("HEAD", "/up/b8", None, False),
    ("DELETE", "/up/w9", None, False),
]
MALFORMED = b"GET /up/w10 HTTP/1.1\r\nHost: app\r\ncontent-length: nope\r\n\r\n"
AFTER = _request("POST", "/up/w11", b"never answered")


@pytest.mark.parametrize("step", [0, 7, 1], ids=["one-write", "7-byte-slices", "byte-by-byte"])
async def test_pipelined_answers_come_back_whole_in_order_then_the_refusal_then_close(
    step: int,
) -> None:
    """Every pipelined request before a malformed one is answered whole and in order (whatever
    shape the upstream's answer had), then the 400, then the connection closes; the upstream
    pool is left with no connection busy and only the one it needed."""
    wire = b"".join(_request(m, p, b, c) for m, p, b, c in CALLS) + MALFORMED + AFTER
    async with RawUpstream(_script) as up:
        proc = await asyncio.to_thread(SidecarProcess({"upstreams": {"up": {"url": up.url}}}).start)
        try:
            async with await RawConnection.open(proc.http_port) as conn:
                if step == 0:
                    await conn.send(wire)
                else:
                    for i in range(0, len(wire), step):
                        await conn.send(wire[i : i + step])
                for method, path, body, _ in CALLS:
                    resp = await conn.response(head=method == "HEAD", timeout=WAIT)
                    if path == "/nope":
                        assert resp.status == 404, (path, resp)
                        continue
                    target = path[len("/up") :]
                    assert resp.status == 200, (path, resp)
                    assert resp.header("connection") != "close", (path, resp)
                    if method == "HEAD":
                        assert resp.body == b""
                        assert resp.header("content-length") == str(
                            len(_expected(target, b"", "HEAD"))
                        )
                    else:
                        assert resp.body == _expected(target, body or b"", method), path
                refusal = await conn.response(timeout=WAIT)
                assert refusal.status == 400 and refusal.header("connection") == "close"
                assert await conn.closed()
            # what reached the upstream: the calls before the malformed one, in order, on one
            # connection
            seen = [(r.method, r.target) for c in up.conns for r in c.requests]
            assert seen == [(m, p[len("/up") :]) for m, p, _, _ in CALLS if p != "/nope"]
            pool = await settled_pool(proc)
            assert pool["connections_opened"] == 1 and len(up.conns) == 1, pool
        finally:
            proc.kill()
