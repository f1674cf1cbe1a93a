"""Reading upstream responses on one connection: framing, reuse decisions and back-pressure,
driven byte by byte through an in-memory transport (no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.errors import UpstreamProtocolError, UpstreamReset, UpstreamTimeout
from sidecar.upstream import body as body_module
from sidecar.upstream.body import BODY_HIGH_WATER, UpstreamBody
from sidecar.upstream.connection import MAX_RESPONSE_HEADER_BYTES
from tests.unit.fake_transport import respond, settle, standalone

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def _read(body: object) -> bytes:
    assert isinstance(body, UpstreamBody)
    return b"".join([chunk async for chunk in body])


async def test_a_response_split_into_single_bytes_is_read_whole() -> None:
    """TCP may deliver a response one byte at a time: the result is the same."""
    conn, _, events = standalone()
    fut = conn.begin(False)
    conn.request_sent = True
    data = b"HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    for i in range(len(data)):
        conn.data_received(data[i : i + 1])
    resp = fut.result()
    assert resp.status == 200 and resp.headers.get("x-a") == "1"
    assert await _read(resp.body) == b"abc"
    assert events == ["free"]


async def test_a_body_that_arrives_with_its_head_is_bytes_and_frees_the_connection() -> None:
    """The common small response costs no stream: the body is bytes and the connection is free
    before the caller even resumes."""
    conn, _, events = standalone()
    resp = respond(conn, OK).result()
    assert resp.body == b"ok" and resp.length == 2
    assert events == ["free"] and conn.reusable


@pytest.mark.parametrize("value", [b"0", b"7", b"007", b"7 ", b"7\t \t", b"18446744073709551615"])
async def test_a_content_length_reads_as_python_reads_it(value: bytes) -> None:
    """Whatever Content-Length llhttp accepts (leading zeros, whitespace after, the largest it
    takes) frames the answer at the length ``int`` reads in it."""
    conn, _, _ = standalone()
    fut = conn.begin(True)  # a HEAD answer: a length with no body behind it
    conn.request_sent = True
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\n")
    assert fut.result().length == int(value)


async def test_trailers_after_a_chunked_body_are_not_response_headers() -> None:
    """Trailer fields arrive after the head was handed over: they never join its headers
    (nor are they passed on), the first response's or the next one's."""
    conn, _, _ = standalone()
    fut = conn.begin(False)
    conn.request_sent = True
    conn.data_received(
        b"HTTP/1.1 200 OK\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n"
    )
    resp = fut.result()
    conn.data_received(b"0\r\nx-trailer: t\r\n\r\n")
    assert await _read(resp.body) == b"ok"
    assert list(resp.headers) == [("x-a", "1")]
    again = respond(conn, OK).result()
    assert again.body == b"ok" and list(again.headers) == []


async def test_the_answer_to_an_abandoned_call_does_not_free_its_connection() -> None:
    """A call cancelled (its app left, its deadline passed) just before its answer came still
    has its cleanup to run, which closes the connection: the connection is never handed to
    another call meanwhile, whose request that cleanup would cut."""
    conn, transport, events = standalone()
    fut = conn.begin(False)
    conn.request_sent = True
    fut.cancel()  # the call's task was cancelled while it waited for the answer
    conn.data_received(OK)
    assert "free" not in events and not conn.reusable and transport.closed
    assert conn.carries(fut)  # the cleanup finds its exchange and closes the connection


async def test_a_later_call_is_not_its_predecessors_to_close() -> None:
    """Once a connection carries another call, an earlier call's cleanup leaves it alone."""
    conn, _, events = standalone()
    first = respond(conn, OK)
    second = conn.begin(False)
    assert events == ["free"] and not conn.carries(first) and conn.carries(second)


@pytest.mark.parametrize(
    "second",
    [OK, b"HTTP/1.1 204 No Content\r\n\r\n", b"H", b"HTTP/1.", b"HTTP/1.1 200 OK\r\n"],
)
async def test_a_second_response_in_the_same_read_poisons_the_connection(second: bytes) -> None:
    """Bytes after a complete response are never kept for the next request: the first response
    is delivered and the connection is closed: a second response with headers or without, or
    only its first bytes (the rest would otherwise answer the next call on this connection)."""
    conn, transport, events = standalone()
    resp = respond(conn, OK + second).result()
    assert resp.body == b"ok"
    assert not conn.reusable and transport.closed and "free" not in events


async def test_interim_responses_are_skipped() -> None:
    """1xx responses before the final one are read and dropped."""
    conn, _, _ = standalone()
    fut = respond(conn, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nlink: x\r\n\r\n" + OK)
    resp = fut.result()
    assert resp.status == 200 and resp.body == b"ok" and conn.reusable
    assert list(resp.headers) == []  # the interim response's headers are not the final one's


async def test_head_response_ends_at_its_headers_and_the_next_exchange_parses() -> None:
    """A HEAD answer announces a length but has no body; the connection carries on."""
    conn, _, events = standalone()
    head = respond(conn, b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n", head_only=True)
    assert head.result().length == 1000 and head.result().body == b""
    assert respond(conn, OK).result().body == b"ok"
    assert events == ["free", "free"]


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_end_at_their_headers(status: int) -> None:
    """204 and 304 have no body whatever their headers say."""
    conn, _, events = standalone()
    resp = respond(conn, b"HTTP/1.1 %d X\r\ncontent-length: 5\r\n\r\n" % status).result()
    assert resp.status == status and resp.body == b""
    assert resp.length == (None if status == 204 else 5)
    assert respond(conn, OK).result().body == b"ok"


async def test_close_delimited_body_is_complete_at_fin_but_truncated_at_reset() -> None:
    """A body that runs until close: a clean close ends it, a reset cuts it (the app must see a
    cut, not a short body that looks whole)."""
    conn, _, _ = standalone()
    resp = respond(conn, b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npart").result()
    conn.connection_lost(None)
    assert await _read(resp.body) == b"part"

    conn, _, _ = standalone()
    resp = respond(conn, b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\npart").result()
    conn.connection_lost(ConnectionResetError(104, "reset"))
    with pytest.raises(UpstreamReset):
        await _read(resp.body)


async def test_a_length_delimited_body_cut_short_fails_the_stream() -> None:
    """Fewer bytes than Content-Length, then close: the body stream raises after what arrived."""
    conn, _, _ = standalone()
    resp = respond(conn, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc").result()
    conn.connection_lost(None)
    assert isinstance(resp.body, UpstreamBody)
    assert await resp.body.__anext__() == b"abc"
    with pytest.raises(UpstreamReset, match="before the response was complete"):
        await resp.body.__anext__()


async def test_closed_before_any_byte_is_a_reset() -> None:
    """An upstream that closes without answering: `upstream_reset`, before responding."""
    conn, _, _ = standalone()
    fut = conn.begin(False)
    conn.connection_lost(None)
    with pytest.raises(UpstreamReset, match="before responding"):
        fut.result()
    assert not conn.got_bytes


async def test_a_response_before_the_request_was_fully_sent_is_not_reused() -> None:
    """An early answer (413 mid-upload) leaves the request half-written: the connection closes."""
    conn, transport, events = standalone()
    fut = conn.begin(False)  # request_sent stays False: the body is still being pumped
    conn.data_received(b"HTTP/1.1 413 Too Large\r\ncontent-length: 0\r\n\r\n")
    assert fut.result().status == 413
    assert transport.closed and "free" not in events


async def test_reading_pauses_while_the_app_is_slow_and_resumes_as_it_reads() -> None:
    """Back-pressure: past the high-water mark the sidecar stops reading from the upstream."""
    conn, transport, _ = standalone()
    size = 4 * BODY_HIGH_WATER
    resp = respond(conn, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size).result()
    block = b"x" * 65536
    while transport.reading:
        conn.data_received(block)
    body = resp.body
    assert isinstance(body, UpstreamBody)
    assert body.size <= BODY_HIGH_WATER + len(block)
    while not transport.reading:
        await body.__anext__()
    assert body.size < BODY_HIGH_WATER


async def test_an_endless_header_line_is_refused_at_the_limit() -> None:
    """llhttp buffers a header until its line ends: the raw head is bounded too."""
    conn, transport, _ = standalone()
    fut = conn.begin(False)
    conn.request_sent = True
    conn.data_received(b"HTTP/1.1 200 OK\r\nx-big: ")
    while not fut.done():
        conn.data_received(b"v" * 4096)
        assert len(b"".join(transport.written)) == 0
    with pytest.raises(UpstreamProtocolError, match="over"):
        fut.result()
    assert transport.closed
    assert conn._raw_head_bytes <= MAX_RESPONSE_HEADER_BYTES + 4096


async def test_bytes_while_idle_close_the_connection() -> None:
    """An upstream that speaks unasked on an idle connection is not trusted again."""
    conn, transport, events = standalone()
    respond(conn, OK)
    conn.data_received(b"HTTP/1.1 200 OK\r\n")
    await settle()
    assert transport.closed and events == ["free", "lost"]


async def test_app_going_away_mid_body_closes_the_connection() -> None:
    """`aclose()` on an unfinished body (the app hung up) closes the upstream connection."""
    conn, transport, events = standalone()
    resp = respond(conn, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc").result()
    assert isinstance(resp.body, UpstreamBody)
    await resp.body.aclose()
    await settle()
    assert transport.closed and events == ["lost"]


async def test_keep_alive_timeout_hint_is_read() -> None:
    """The upstream's idle timeout (`Keep-Alive: timeout=N`) is remembered for the pool."""
    conn, _, _ = standalone()
    respond(conn, b"HTTP/1.1 200 OK\r\nkeep-alive: max=5, timeout=7\r\ncontent-length: 0\r\n\r\n")
    assert conn.keep_alive_hint == 7.0


async def test_begin_on_a_closed_connection_fails_at_once() -> None:
    """A connection lost between checkout and use fails fast, never hangs."""
    conn, transport, _ = standalone()
    transport.close()
    await settle()
    with pytest.raises(UpstreamReset):
        await asyncio.wait_for(conn.begin(False), 1)


async def test_a_body_that_stalls_mid_stream_is_cut_after_the_idle_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An upstream that stops sending mid-body does not hold the app forever."""
    monkeypatch.setattr(body_module, "BODY_IDLE_TIMEOUT", 0.05)
    conn, transport, _ = standalone()
    resp = respond(conn, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc").result()
    assert isinstance(resp.body, UpstreamBody)
    assert await resp.body.__anext__() == b"abc"
    with pytest.raises(UpstreamTimeout, match="stalled"):
        await asyncio.wait_for(resp.body.__anext__(), 5)
    await settle()
    assert transport.closed


async def test_each_response_on_a_connection_has_its_own_header_names() -> None:
    """Names are remembered by place from one response to the next on a connection: a response
    whose names differ, move, or are fewer or more still gets exactly its own, lower-cased."""
    conn, _, _ = standalone()
    heads = [
        b"X-A: 1\r\nX-B: 2\r\n",
        b"X-B: 3\r\nX-A: 4\r\n",  # the same names, swapped
        b"X-C: 5\r\n",  # fewer
        b"X-C: 6\r\nX-Long-" + b"n" * 80 + b": 7\r\nX-D: 8\r\n",  # more, one too long to keep
        b"x-c: 9\r\nX-Long-" + b"n" * 80 + b": 10\r\nX-E: 11\r\n",
    ]
    for head in heads:
        resp = respond(
            conn, b"HTTP/1.1 200 OK\r\n" + head + b"content-length: 2\r\n\r\nok"
        ).result()
        sent = [line.split(b": ") for line in head.split(b"\r\n") if line]
        assert list(resp.headers) == [(k.decode().lower(), v.decode()) for k, v in sent]
