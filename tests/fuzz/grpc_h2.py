"""Fuzz harness for the HTTP/2 front of the gRPC port: bytes from an app into one
:class:`~sidecar.grpc.h2_connection.H2Connection` (its public entry point, ``data_received``),
through a memory transport, with a stub echo upstream behind a real route table.

Checked for every input: no exception escapes ``data_received`` and nothing is logged as an
unexpected error; the input is handled within its bound; each call's buffered request bytes
stay within its flow-control window plus one message, and the calls held stay within the
stream limit; everything the front writes parses as HTTP/2 frames; once the app leaves, every
call's task is gone, no call is counted active and the listener forgets the connection. Not
here: the limits of rapid resets (the front's own work), the sidecar's own services.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from hyperframe.exceptions import HyperframeError
from hyperframe.frame import Frame

from sidecar.config.models import GrpcListenerConfig
from sidecar.errors import SidecarError
from sidecar.exchange import Exchange, Headers, Response
from sidecar.grpc.h2_connection import H2Connection
from sidecar.grpc.h2_listener import STREAM_WINDOW, H2GrpcListener
from sidecar.grpc.routes import GrpcRoutes
from sidecar.grpc.wire import error_response
from sidecar.routing import Route
from sidecar.telemetry.metrics import Metrics

from .common import MemoryTransport, PropertyBroken, chunks, no_error_logged, run_bounded, settle

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SERVICE = "fuzz.Echo"
MAX_MESSAGE = 1024
#: h2 holds the app to its default until it acknowledges the front's SETTINGS
H2_DEFAULT_STREAMS = 100
_METRICS: Metrics | None = None


def _metrics() -> Metrics:
    global _METRICS
    if _METRICS is None:
        _METRICS = Metrics()
    return _METRICS


@dataclass
class H2Run:
    """What the front did: the bytes it wrote, and the calls the stub upstream got."""

    out: bytes = b""
    calls: list[str] = field(default_factory=list)
    messages: int = 0


async def _echo(ex: Exchange, run: H2Run) -> Response:
    """``/fuzz.Echo/Unary`` reads every message then answers one; anything else echoes each
    message as it comes (a bidi stream). Errors are answered as the ``rescue`` filter does."""
    run.calls.append(ex.path)
    body: AsyncIterator[bytes] | bytes = ex.body
    if isinstance(body, bytes):  # the whole request, one message (sidecar.grpc.wire)
        body = _one(body)
    ok = Headers([("grpc-status", "0")])
    if ex.path.endswith("/Unary"):
        try:
            got = [m async for m in body]
        except SidecarError as e:
            return error_response(e)
        run.messages += len(got)
        resp = Response(200, Headers([("x-echo", "1")]), b"".join(got)[:MAX_MESSAGE])
        resp.trailers = ok
        return resp

    async def stream() -> AsyncIterator[bytes]:
        async for message in body:
            run.messages += 1
            yield message

    resp = Response(200, Headers(), stream(), length=None)
    resp.trailers = ok
    return resp


async def _one(message: bytes) -> AsyncIterator[bytes]:
    yield message


def h2_target(data: bytes) -> None:
    """An app sending ``data`` after the HTTP/2 preface (first byte: the cuts; 0x80: no
    preface is added, the bytes are the whole input)."""
    if data:
        run_h2(data[1:], data[0])


def run_h2(payload: bytes, control: int = 0) -> H2Run:
    """Drive one connection with ``payload``; raises :class:`PropertyBroken` on a broken
    property."""
    run = H2Run()
    with no_error_logged("sidecar.grpc"):
        run_bounded(lambda: _drive(payload, control, run))
    return run


async def _drive(payload: bytes, control: int, run: H2Run) -> None:
    cfg = GrpcListenerConfig(
        max_receive_message_size=MAX_MESSAGE,
        max_send_message_size=MAX_MESSAGE,
        max_metadata_size=1024,
        max_concurrent_streams=8,
    )

    async def upstream(ex: Exchange) -> Response:
        return await _echo(ex, run)

    routes = GrpcRoutes({"up": Route("up", "up", upstream)}, {SERVICE: "up"})
    listener = H2GrpcListener(cfg, routes, _metrics(), sidecar=None)  # type: ignore[arg-type]
    conn = H2Connection(listener)
    transport = MemoryTransport(conn)
    conn.connection_made(transport)
    data = payload if control & 0x80 else PREFACE + payload
    for piece in chunks(data, control & 0x7F):
        if transport.closed:
            break
        conn.data_received(piece)
        _check_caps(conn, cfg)
        await asyncio.sleep(0)
    await settle(lambda: transport.closed or not _running(conn))
    # the app leaves: every call still running is cancelled
    transport.close()
    await settle(
        lambda: conn.transport is None and not _running(conn) and not listener.active, turns=400
    )
    if _running(conn) or listener.active:
        raise PropertyBroken(f"{listener.active} calls still active after the app left")
    if conn in listener.connections:
        raise PropertyBroken("the listener still holds a closed connection")
    run.out = bytes(transport.out)
    _check_frames(run.out)


def _running(conn: H2Connection) -> bool:
    return any(s.task is not None and not s.task.done() for s in conn.streams.values())


def _check_caps(conn: H2Connection, cfg: GrpcListenerConfig) -> None:
    limit = max(cfg.max_concurrent_streams, H2_DEFAULT_STREAMS)
    if len(conn.streams) > limit:
        raise PropertyBroken(f"{len(conn.streams)} calls held on one connection")
    for stream in conn.streams.values():
        if len(stream.buf) > STREAM_WINDOW + 5 + cfg.max_receive_message_size:
            raise PropertyBroken(f"{len(stream.buf)} request bytes buffered for one call")


def _check_frames(out: bytes) -> None:
    at = 0
    while at < len(out):
        if len(out) - at < 9:
            raise PropertyBroken(f"a truncated frame header written: {out[at:]!r}")
        try:
            frame, length = Frame.parse_frame_header(memoryview(out[at : at + 9]))
            body = out[at + 9 : at + 9 + length]
            if len(body) < length:
                raise PropertyBroken(f"a truncated {type(frame).__name__} written")
            frame.parse_body(memoryview(body))
        except HyperframeError as e:
            raise PropertyBroken(f"a malformed frame written: {e}") from e
        at += 9 + length
