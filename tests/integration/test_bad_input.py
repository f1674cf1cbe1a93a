"""Hostile and malformed requests on the app-facing listener, byte for byte over raw sockets.

Each one must get a 4xx that says the sidecar refused it (``x-sidecar-error`` and a one-line
body) and a closed connection, while a well-behaved app on another keep-alive connection goes on
getting 200s from the upstream, and the sidecar still answers afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from sidecar.app import Sidecar
from sidecar.listeners.http_connection import WORKER_TASK
from sidecar.testing import FakeUpstream, SidecarProcess, async_wait_until, running_sidecar

from .raw_http import KeepAliveProber, RawConnection, RawResponse, get, send_and_read
from .raw_upstream import RawUpstream, UpstreamConn, ok_response

H = "Host: 127.0.0.1\r\n"
LIMIT = 1024  # http.max_request_body in these tests


def _cfg(upstream: FakeUpstream) -> dict[str, object]:
    return {
        "http": {
            "address": "127.0.0.1:0",
            "max_request_body": LIMIT,
            "header_timeout": "1s",
            "idle_timeout": "5s",
        },
        "upstreams": {"up": {"url": upstream.url}},
    }


@dataclass
class Env:
    sidecar: Sidecar
    upstream: FakeUpstream

    @property
    def port(self) -> int:
        return self.sidecar.http_port


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with FakeUpstream() as up, running_sidecar(_cfg(up)) as s:
        yield Env(s, up)


def _req(head: str, body: bytes = b"") -> bytes:
    return head.encode("latin-1") + body


#: (case id, raw request, expected status, expected x-sidecar-error)
MALFORMED: list[tuple[str, bytes, int, str]] = [
    (
        "content-length-and-transfer-encoding",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
        + b"0\r\n\r\n",
        400,
        "bad_request",
    ),
    (
        "duplicate-content-length-differing",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 4\r\n\r\n", b"abcd"),
        400,
        "bad_request",
    ),
    (
        "duplicate-content-length-equal",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Content-Length: 3\r\nContent-Length: 3\r\n\r\n", b"abc"),
        400,
        "bad_request",
    ),
    (
        "content-length-list",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Content-Length: 3, 3\r\n\r\n", b"abc"),
        400,
        "bad_request",
    ),
    (
        "negative-content-length",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Content-Length: -1\r\n\r\n"),
        400,
        "bad_request",
    ),
    (
        "non-numeric-content-length",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Content-Length: 1e3\r\n\r\n"),
        400,
        "bad_request",
    ),
    (
        "content-length-overflow",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Content-Length: 99999999999999999999999\r\n\r\n"),
        400,
        "bad_request",
    ),
    (
        "chunk-size-not-hex",
        _req(
            f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n", b"zz\r\nab\r\n0\r\n\r\n"
        ),
        400,
        "bad_request",
    ),
    (
        "chunk-size-overflow",
        _req(
            f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n",
            b"fffffffffffffffffff\r\nab\r\n0\r\n\r\n",
        ),
        400,
        "bad_request",
    ),
    (
        "chunk-missing-crlf",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n", b"3\r\nabcX0\r\n\r\n"),
        400,
        "bad_request",
    ),
    (
        "chunk-size-bare-lf",
        _req(
            f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n", b"3\nabc\r\n0\r\n\r\n"
        ),
        400,
        "bad_request",
    ),
    (
        "obs-fold-continuation",
        _req(f"GET /up/ HTTP/1.1\r\n{H}X-A: one\r\n two\r\n\r\n"),
        400,
        "bad_request",
    ),
    (
        "nul-in-header-value",
        _req(f"GET /up/ HTTP/1.1\r\n{H}X-A: a\x00b\r\n\r\n"),
        400,
        "bad_request",
    ),
    ("nul-in-path", _req(f"GET /up/a\x00b HTTP/1.1\r\n{H}\r\n"), 400, "bad_request"),
    ("encoded-nul-in-path", _req(f"GET /up/a%00b HTTP/1.1\r\n{H}\r\n"), 400, "bad_request"),
    (
        "control-char-in-header",
        _req(f"GET /up/ HTTP/1.1\r\n{H}X-A: a\x01b\r\n\r\n"),
        400,
        "bad_request",
    ),
    ("bare-lf-line-endings", b"GET /up/ HTTP/1.1\nHost: 127.0.0.1\n\n", 400, "bad_request"),
    ("bare-cr-in-header", _req(f"GET /up/ HTTP/1.1\r\n{H}X-A: a\rb\r\n\r\n"), 400, "bad_request"),
    ("space-before-colon", _req(f"GET /up/ HTTP/1.1\r\n{H}X-A : b\r\n\r\n"), 400, "bad_request"),
    ("invalid-header-name", _req(f"GET /up/ HTTP/1.1\r\n{H}X(A): b\r\n\r\n"), 400, "bad_request"),
    ("empty-header-name", _req(f"GET /up/ HTTP/1.1\r\n{H}: b\r\n\r\n"), 400, "bad_request"),
    ("leading-whitespace-header", _req(f"GET /up/ HTTP/1.1\r\n {H}\r\n"), 400, "bad_request"),
    (
        "headers-over-60KiB",
        _req(f"GET /up/ HTTP/1.1\r\n{H}" + "".join(f"X-{i}: {'v' * 1600}\r\n" for i in range(40))),
        431,
        "headers_too_large",
    ),
    (
        "one-header-over-60KiB-unterminated",
        _req(f"GET /up/ HTTP/1.1\r\n{H}X-Big: " + "v" * (70 * 1024)),
        431,
        "headers_too_large",
    ),
    (
        "more-than-100-headers",
        _req(f"GET /up/ HTTP/1.1\r\n{H}" + "".join(f"X-{i}: v\r\n" for i in range(101)) + "\r\n"),
        431,
        "headers_too_large",
    ),
    ("uri-over-8KiB", _req(f"GET /up/{'a' * 8300} HTTP/1.1\r\n{H}\r\n"), 414, "uri_too_long"),
    ("two-host-headers", _req(f"GET /up/ HTTP/1.1\r\n{H}Host: up\r\n\r\n"), 400, "bad_request"),
    ("missing-host-http11", b"GET /up/ HTTP/1.1\r\nX-A: b\r\n\r\n", 400, "bad_request"),
    ("empty-host", b"GET /up/ HTTP/1.1\r\nHost: \r\n\r\n", 400, "bad_request"),
    ("host-with-userinfo", b"GET /up/ HTTP/1.1\r\nHost: up@evil\r\n\r\n", 400, "bad_request"),
    ("host-with-space", b"GET /up/ HTTP/1.1\r\nHost: up evil\r\n\r\n", 400, "bad_request"),
    ("invalid-method-token", _req(f"G@T /up/ HTTP/1.1\r\n{H}\r\n"), 400, "bad_request"),
    ("unknown-method", _req(f"FROB /up/ HTTP/1.1\r\n{H}\r\n"), 400, "bad_request"),
    ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "bad_request"),
    (
        "tls-client-hello",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
        400,
        "bad_request",
    ),
    ("binary-garbage", b"\xff\xfe\xfd\r\n\r\n", 400, "bad_request"),
    ("version-1.7", _req(f"GET /up/ HTTP/1.7\r\n{H}\r\n"), 400, "bad_request"),
    ("version-3.0", _req(f"GET /up/ HTTP/3.0\r\n{H}\r\n"), 400, "bad_request"),
    (
        "version-2.0-kept-alive",
        _req(f"GET /up/ HTTP/2.0\r\n{H}Connection: keep-alive\r\n\r\n"),
        400,
        "bad_request",
    ),
    ("version-0.9", b"GET /up/\r\n\r\n", 400, "bad_request"),
    ("lower-case-version", _req(f"GET /up/ http/1.1\r\n{H}\r\n"), 400, "bad_request"),
    (
        "transfer-encoding-gzip-alone",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n", b"abc"),
        400,
        "bad_request",
    ),
    (
        "transfer-encoding-chunked-then-gzip",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: chunked, gzip\r\n\r\n", b"0\r\n\r\n"),
        400,
        "bad_request",
    ),
    (
        "transfer-encoding-gzip-then-chunked",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: gzip, chunked\r\n\r\n", b"0\r\n\r\n"),
        400,
        "bad_request",
    ),
    (
        "transfer-encoding-twice",
        _req(
            f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            b"0\r\n\r\n",
        ),
        400,
        "bad_request",
    ),
    (
        "transfer-encoding-on-http10",
        b"POST /up/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "bad_request",
    ),
    (
        "connect-method",
        b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
        400,
        "bad_request",
    ),
    ("asterisk-form", _req(f"OPTIONS * HTTP/1.1\r\n{H}\r\n"), 400, "bad_request"),
    (
        "absolute-form-with-userinfo",
        _req(f"GET http://u:p@up/ HTTP/1.1\r\n{H}\r\n"),
        400,
        "bad_request",
    ),
    ("absolute-form-other-scheme", _req(f"GET ftp://up/x HTTP/1.1\r\n{H}\r\n"), 400, "bad_request"),
    (
        "unsupported-expect",
        _req(f"GET /up/ HTTP/1.1\r\n{H}Expect: teapot\r\n\r\n"),
        400,
        "bad_request",
    ),
    (
        "upgrade-with-body",
        _req(
            f"POST /up/ HTTP/1.1\r\n{H}Connection: upgrade\r\nUpgrade: h2c\r\n"
            "Content-Length: 3\r\n\r\n",
            b"abc",
        ),
        400,
        "bad_request",
    ),
    (
        "declared-body-over-limit",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Content-Length: {LIMIT + 1}\r\n\r\n", b"x" * (LIMIT + 1)),
        413,
        "body_too_large",
    ),
    (
        "chunked-body-over-limit-in-one-write",
        _req(f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n")
        + b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(5))
        + b"0\r\n\r\n",
        413,
        "body_too_large",
    ),
]


def _assert_refusal(resp: RawResponse, closed: bool, status: int, code: str) -> None:
    assert resp.status == status, (resp.status, resp.body)
    assert resp.header("x-sidecar-error") == code
    assert resp.body.endswith(b"\n") and resp.body.count(b"\n") == 1, resp.body
    assert resp.body.startswith(code.encode() + b": ")
    assert resp.header("connection") == "close"
    assert closed, "the sidecar left a connection open after refusing malformed input"


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [pytest.param(raw, status, code, id=name) for name, raw, status, code in MALFORMED],
)
async def test_malformed_request_is_refused_and_closed_while_good_client_works(
    env: Env, raw: bytes, status: int, code: str
) -> None:
    """A malformed request gets a 4xx and a closed connection; a keep-alive app is unaffected."""
    async with KeepAliveProber(env.port) as good:
        resp, closed = await send_and_read(env.port, raw)
        _assert_refusal(resp, closed, status, code)
        await good.wait_for(3)
    assert not good.failures
    assert set(good.statuses) == {200}
    assert all(r.path_qs == "/" for r in env.upstream.requests)  # nothing malformed got through


async def test_chunked_body_streaming_past_the_limit_gets_413(env: Env) -> None:
    """A chunked body that grows past `http.max_request_body` while streaming is cut with 413."""
    async with KeepAliveProber(env.port) as good, await RawConnection.open(env.port) as conn:
        await conn.send(_req(f"POST /up/ HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n"))
        await conn.send(b"200\r\n" + b"x" * 512 + b"\r\n")
        await asyncio.sleep(0)  # give the sidecar a chance to dispatch the streaming request
        await conn.send(b"200\r\n" + b"x" * 512 + b"\r\n")
        await conn.send(b"200\r\n" + b"x" * 512 + b"\r\n")
        resp = await conn.response()
        _assert_refusal(resp, await conn.closed(), 413, "body_too_large")
        await good.wait_for(3)
    assert not good.failures
    assert not any(r.method == "POST" for r in env.upstream.requests)


async def test_body_limit_allows_a_body_exactly_at_the_limit(env: Env) -> None:
    """A body of exactly `max_request_body` bytes is forwarded (the limit is inclusive)."""
    async with await RawConnection.open(env.port) as conn:
        await conn.send(
            _req(f"POST /up/ HTTP/1.1\r\n{H}Content-Length: {LIMIT}\r\n\r\n", b"y" * LIMIT)
        )
        resp = await conn.response()
    assert resp.status == 200
    assert env.upstream.requests[-1].body == b"y" * LIMIT


async def test_slowloris_partial_head_gets_408_after_header_timeout(env: Env) -> None:
    """A request head that stops half-way is answered 408 after `http.header_timeout`."""
    loop = asyncio.get_running_loop()
    async with KeepAliveProber(env.port) as good, await RawConnection.open(env.port) as conn:
        await conn.send(b"GET /up/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = loop.time()
        resp = await conn.response(timeout=5.0)
        waited = loop.time() - started
        _assert_refusal(resp, await conn.closed(), 408, "request_timeout")
        await good.wait_for(3)
    assert 0.9 <= waited < 4.0, waited
    assert not good.failures


async def test_a_pipelined_request_cut_inside_its_method_gets_408_after_header_timeout(
    env: Env,
) -> None:
    """The header timeout runs from a request's first byte, also when that byte came pipelined
    behind an answered request: not the longer idle timeout, and not a silent close."""
    loop = asyncio.get_running_loop()
    async with await RawConnection.open(env.port) as conn:
        await conn.send(f"GET /up/ HTTP/1.1\r\n{H}\r\nGE".encode())
        started = loop.time()
        assert (await conn.response(timeout=5.0)).status == 200
        resp = await conn.response(timeout=8.0)
        waited = loop.time() - started
        _assert_refusal(resp, await conn.closed(), 408, "request_timeout")
    assert 0.9 <= waited < 4.0, waited


async def test_slowloris_dripping_bytes_still_times_out(env: Env) -> None:
    """Sending a head one byte at a time does not reset the header timeout."""
    loop = asyncio.get_running_loop()
    async with await RawConnection.open(env.port) as conn:
        started = loop.time()
        await conn.send(b"GET /up/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        status = None
        async with asyncio.timeout(6):
            while status is None:
                try:
                    await conn.send(b"X")
                except ConnectionError:
                    break
                try:
                    status = (await conn.response(timeout=0.2)).status
                except TimeoutError:
                    pass
        assert status == 408
        assert loop.time() - started < 4.0


async def test_many_hostile_clients_at_once_do_not_disturb_a_good_one(env: Env) -> None:
    """Every malformed request at the same time: all refused, the good client never notices."""
    async with KeepAliveProber(env.port) as good:
        results = await asyncio.gather(
            *(send_and_read(env.port, raw) for _, raw, _, _ in MALFORMED)
        )
        await good.wait_for(3)
    for (name, _, status, code), (resp, closed) in zip(MALFORMED, results, strict=True):
        assert (resp.status, resp.header("x-sidecar-error"), closed) == (status, code, True), name
    assert not good.failures and set(good.statuses) == {200}
    assert env.sidecar.http is not None and len(env.sidecar.http.connections) <= 1


async def test_absolute_form_to_unconfigured_host_is_404_not_a_proxy(env: Env) -> None:
    """`GET http://evil.example/ HTTP/1.1` is 404 `no_route`: the sidecar is not an open proxy."""
    async with await RawConnection.open(env.port) as conn:
        await conn.send(_req(f"GET http://evil.example/up/ HTTP/1.1\r\n{H}\r\n"))
        resp = await conn.response()
        assert resp.status == 404
        assert resp.header("x-sidecar-error") == "no_route"
        assert resp.body.count(b"\n") == 1
        # not malformed: the connection stays usable
        await conn.send(get())
        assert (await conn.response()).status == 200
    assert [r.path_qs for r in env.upstream.requests] == ["/"] * len(env.upstream.requests)


async def test_pipelined_good_requests_then_garbage_answer_good_ones_first(env: Env) -> None:
    """Garbage after pipelined good requests: the good ones are answered in order, then a 400."""
    async with await RawConnection.open(env.port) as conn:
        await conn.send(get("/up/1") + get("/up/2") + b"GARBAGE\x00\r\n\r\n")
        first, second = await conn.response(), await conn.response()
        refusal = await conn.response()
        closed = await conn.closed()
    assert (first.status, second.status) == (200, 200)
    _assert_refusal(refusal, closed, 400, "bad_request")
    assert [r.path_qs for r in env.upstream.requests] == ["/1", "/2"]


async def test_sidecar_process_survives_every_malformed_request() -> None:
    """The real `sidecar run` process (uvloop) refuses every malformed request and keeps serving."""
    async with FakeUpstream() as up:
        with SidecarProcess(_cfg(up)) as proc:
            results = await asyncio.gather(
                *(send_and_read(proc.http_port, raw) for _, raw, _, _ in MALFORMED)
            )
            for (name, _, status, code), (resp, closed) in zip(MALFORMED, results, strict=True):
                assert (resp.status, resp.header("x-sidecar-error"), closed) == (
                    status,
                    code,
                    True,
                ), name
            resp, _ = await send_and_read(proc.http_port, get(extra="Connection: close\r\n"))
            assert resp.status == 200
            assert proc.proc is not None and proc.proc.poll() is None


def _workers() -> int:
    return sum(1 for t in asyncio.all_tasks() if t.get_name() == WORKER_TASK)


async def test_every_way_a_connection_ends_leaves_no_worker_or_connection(env: Env) -> None:
    """Refused, closed by the app mid-request, `Connection: close`, idle: nothing is left over."""
    http = env.sidecar.http
    assert http is not None
    async with await RawConnection.open(env.port) as conn:
        await conn.send(get())
        await conn.response()
        assert _workers() == 1 and len(http.connections) == 1  # what is counted below
    for _, raw, _, _ in MALFORMED:
        await send_and_read(env.port, raw)
    for _ in range(5):
        await send_and_read(env.port, get(extra="Connection: close\r\n"))
        async with await RawConnection.open(env.port) as conn:  # the app leaves mid-head
            await conn.send(b"GET /up/ HTTP/1.1\r\nHo")
        async with await RawConnection.open(env.port) as conn:  # keep-alive, then leaves
            await conn.send(get())
            await conn.response()
        async with await RawConnection.open(env.port) as conn:  # leaves while answered
            await conn.send(get("/up/") + get("/up/") + get("/up/"))
    await async_wait_until(lambda: not http.connections and _workers() == 0, 5.0)


async def test_broken_body_behind_a_slow_request_is_refused_without_reaching_upstream() -> None:
    """A pipelined upload whose chunking breaks while it waits is refused in order, never sent."""
    lines: list[bytes] = []

    async def script(conn: UpstreamConn) -> None:
        while True:  # record every request line that reaches the upstream, body or not
            head = await conn.reader.readuntil(b"\r\n\r\n")
            lines.append(head.split(b"\r\n", 1)[0])
            await asyncio.sleep(0.3)
            await conn.send(ok_response())

    async with RawUpstream(script) as up, running_sidecar(_cfg(up)) as s:
        http = s.http
        assert http is not None
        async with await RawConnection.open(s.http_port) as conn:
            await conn.send(
                get("/up/slow")
                + _req(f"POST /up/upload HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n")
                + b"3\r\nabc\r\n"
            )
            # the upload is dispatched (streaming) and queued behind /slow
            await async_wait_until(lambda: any(len(c.queue) == 1 for c in http.connections))
            await conn.send(b"zz\r\n")
            first = await conn.response()
            refusal = await conn.response()
            closed = await conn.closed()
    assert first.status == 200
    _assert_refusal(refusal, closed, 400, "bad_request")
    assert lines == [b"GET /slow HTTP/1.1"]
