"""Fuzz harness for the upstream HTTP/1.1 response framing: bytes from an upstream into one
:class:`~sidecar.upstream.connection.UpstreamConnection`, through a memory transport.

Checked for every input: the response head resolves to a response or to one of the upstream
errors (``upstream_protocol``, ``upstream_reset``), and its body stream yields bytes or raises one
of them, nothing else; nothing hangs; the head and the buffered body stay under their caps while
the harness feeds (only while reading is not paused, as a socket would); a response carries no
hop-by-hop header and a status the listener can write; a complete body announced by a length has
that length; a connection handed back to its pool was framed exactly: the next exchange on it
reads a fresh response correctly (no byte of the previous one is left to confuse it). Not here:
the pool or the adapter that writes requests.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sidecar.errors import SidecarError
from sidecar.exchange import Response
from sidecar.http1 import HOP_BY_HOP
from sidecar.upstream.body import BODY_HIGH_WATER, UpstreamBody
from sidecar.upstream.connection import MAX_RESPONSE_HEADER_BYTES, OwnerOf, UpstreamConnection

from .common import MemoryTransport, PropertyBroken, chunks, run_bounded, settle

_NEXT = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nx-next: 1\r\n\r\nnext"


@dataclass
class UpstreamRun:
    """What the connection made of the bytes: the response (or error) and its whole body."""

    response: Response | None = None
    error: SidecarError | None = None
    body: bytes = b""
    body_error: SidecarError | None = None
    freed: int = 0
    events: list[str] = field(default_factory=list)


def upstream_target(data: bytes) -> None:
    """An upstream answering with ``data`` (its first byte picks the cuts, HEAD, the close)."""
    if data:
        run_upstream(data[1:], data[0])


def run_upstream(payload: bytes, control: int = 0) -> UpstreamRun:
    """Answer one exchange with ``payload``; raises :class:`PropertyBroken` on a broken
    property. ``control``: bits 0-4 the cuts, 0x20 a HEAD request, 0x40 the upstream resets
    instead of closing cleanly, 0x80 the body is read while it arrives."""
    run = UpstreamRun()
    run_bounded(lambda: _drive(payload, control, run))
    return run


async def _drive(payload: bytes, control: int, run: UpstreamRun) -> None:
    events = run.events
    conn = UpstreamConnection(
        OwnerOf(lambda c: events.append("free"), lambda c: events.append("lost"))
    )
    transport = MemoryTransport(conn)
    conn.connection_made(transport)
    head_only = bool(control & 0x20)
    head = conn.begin(head_only)
    conn.request_sent = True
    reader: asyncio.Task[None] | None = None
    for piece in chunks(payload, control & 0x1F):
        await settle(lambda: transport.reading or transport.closed)
        if transport.closed or not transport.reading:
            break
        conn.data_received(piece)
        _check_caps(conn, len(piece))
        if head.done() and reader is None and control & 0x80:
            reader = asyncio.get_running_loop().create_task(_read(head, run))
        await asyncio.sleep(0)
    freed = "free" in run.events
    if not transport.closed and not freed:
        # the upstream is done sending: a clean close (FIN) or a reset
        reset = ConnectionResetError(104, "reset") if control & 0x40 else None
        transport.closed = True
        conn.connection_lost(reset)
    if reader is None:
        reader = asyncio.get_running_loop().create_task(_read(head, run))
    await settle(reader.done)
    if not reader.done():
        raise PropertyBroken("the response body never ended after the upstream closed")
    reader.result()  # an exception out of the reader is a crash: let it show
    _check_response(run, head_only)
    if not transport.closed:
        if not freed:
            raise PropertyBroken("a connection neither freed nor closed")
        await _next_exchange(conn)  # still in the pool: the next call will use it


async def _read(head: asyncio.Future[Response], run: UpstreamRun) -> None:
    try:
        resp = await head
    except SidecarError as e:
        run.error = e
        return
    run.response = resp
    if isinstance(resp.body, bytes):
        run.body = resp.body
        return
    if not isinstance(resp.body, UpstreamBody):
        raise PropertyBroken(f"a response body of type {type(resp.body).__name__}")
    parts = []
    try:
        async for part in resp.body:
            parts.append(part)
    except SidecarError as e:
        run.body_error = e
    run.body = b"".join(parts)


def _check_caps(conn: UpstreamConnection, read: int) -> None:
    if conn._raw_head_bytes > MAX_RESPONSE_HEADER_BYTES + read:
        raise PropertyBroken(f"{conn._raw_head_bytes} response head bytes buffered")
    body = conn._body
    if body is not None and body.size > BODY_HIGH_WATER + read and not conn._read_paused:
        raise PropertyBroken(f"{body.size} body bytes buffered and reading not paused")


def _check_response(run: UpstreamRun, head_only: bool) -> None:
    resp = run.response
    if resp is None:
        if run.error is None:
            raise PropertyBroken("neither a response nor an error")
        return
    if not 200 <= resp.status <= 599:
        raise PropertyBroken(f"a final response with status {resp.status}")
    hop = [k for k, _ in resp.headers if k in HOP_BY_HOP]
    if hop:
        raise PropertyBroken(f"hop-by-hop headers passed on: {hop}")
    if head_only or resp.status in (204, 304):
        if run.body:
            raise PropertyBroken(f"a body on a {resp.status} (HEAD: {head_only}) response")
        return
    if run.body_error is None and resp.length is not None and len(run.body) != resp.length:
        raise PropertyBroken(f"a whole body of {len(run.body)} bytes, length {resp.length}")


async def _next_exchange(conn: UpstreamConnection) -> None:
    """A freed connection must read the next response as if it were new."""
    head = conn.begin(False)
    conn.request_sent = True
    conn.data_received(_NEXT)
    await settle(head.done)
    if not head.done():
        raise PropertyBroken("a reused connection did not read the next response")
    try:
        resp = head.result()
    except SidecarError as e:
        raise PropertyBroken(f"a reused connection failed the next response: {e!r}") from e
    if resp.status != 200 or resp.body != b"next" or resp.headers.get("x-next") != "1":
        raise PropertyBroken(f"a reused connection misread the next response: {resp!r}")
