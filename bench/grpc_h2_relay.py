#!/usr/bin/env python3
"""A measurement prototype: gRPC relayed at the HTTP/2 frame level with the ``h2`` library.

What it is: an asyncio-Protocol server that accepts an app's cleartext HTTP/2 connection and
relays every stream (HEADERS, DATA, trailers, RST_STREAM) to one pooled cleartext HTTP/2
connection to a fixed upstream. DATA payload bytes are forwarded as they arrive: gRPC messages
are never parsed nor re-framed (a frame may carry part of a message or several). Flow control is
end to end: received bytes are acknowledged to the sender (reopening its window) only once they
were written to the other side, so what one stream buffers here is bounded by the window it
advertised (``--window``), and a slow reader slows the writer down instead of filling memory.

What it is not: the product. It exists to price the frame-level path against grpc.aio in
``bench/grpc_proxy.py``. It leaves out everything the sidecar's gRPC port does besides moving
bytes: no filter chain (auth, limits, breaker, retries, tracing, metrics, access log), no routing
(one upstream), no TLS on either side, no deadline handling of its own (``grpc-timeout`` is
forwarded as a header), no message size limit, no header filtering beyond HTTP/2's own rules
(the app's ``:authority`` goes upstream unchanged), no upstream reconnect or second connection
(a stream arriving while the upstream connection is not ready or full is refused with
REFUSED_STREAM, which gRPC clients retry), no graceful shutdown, and no priority handling.

    .venv/bin/python bench/grpc_h2_relay.py --listen 127.0.0.1:50061 --upstream 127.0.0.1:50051

SIGUSR1 prints one JSON line of counters (streams, DATA frames and bytes each way) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
from collections import deque
from typing import Any, cast

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

#: headers HTTP/2 forbids (RFC 9113 §8.2.2); h2 rejects them inbound already, kept for clarity
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding"})
STREAM_ERRORS = (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError)

COUNTERS = {"streams": 0, "frames_to_up": 0, "frames_to_app": 0, "bytes_to_up": 0,
            "bytes_to_app": 0}  # fmt: skip


class Leg:
    """One direction of one relayed stream: bytes waiting for the destination's window."""

    __slots__ = ("relay", "src", "src_sid", "dst", "dst_sid", "chunks", "tail", "done")

    def __init__(self, relay: Relay, src: H2Side, src_sid: int, dst: H2Side, dst_sid: int) -> None:
        self.relay = relay
        self.src, self.src_sid, self.dst, self.dst_sid = src, src_sid, dst, dst_sid
        #: (payload, flow-controlled length still to acknowledge to the source)
        self.chunks: deque[tuple[bytes, int]] = deque()
        #: what ends this direction once the chunks are out: None (not yet), () (END_STREAM on
        #: an empty DATA frame) or the trailers
        self.tail: list[tuple[bytes, bytes]] | tuple[()] | None = None
        self.done = False

    def flush(self) -> None:
        """Send what the destination's flow-control windows allow; acknowledge it to the source."""
        if self.done:
            return
        try:
            self._send()
        except STREAM_ERRORS:  # the destination stream is gone (reset, connection closed)
            self.done = True
            for _, fcl in self.chunks:
                self.src.conn.acknowledge_received_data(fcl, self.src_sid)
            self.chunks.clear()
            self.src.dirty = True
            self.relay.forget()
        if self.done and self.dst.is_app_side:
            self.relay.forget()  # the response is complete: the stream is over on both sides

    def _send(self) -> None:
        dst, conn, sid = self.dst, self.dst.conn, self.dst_sid
        chunks = self.chunks
        while chunks:
            data, fcl = chunks[0]
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
            if room <= 0:
                return
            if len(data) <= room:
                chunks.popleft()
                conn.send_data(sid, data)
                sent, acked = len(data), fcl
            else:
                chunks[0] = (data[room:], fcl - room)
                conn.send_data(sid, data[:room])
                sent = acked = room
            dst.count(sent)
            if acked:
                self.src.conn.acknowledge_received_data(acked, self.src_sid)
                self.src.dirty = True
            dst.dirty = True
        if self.tail is not None:
            if self.tail:
                conn.send_headers(sid, self.tail, end_stream=True)
            else:
                conn.send_data(sid, b"", end_stream=True)
            self.done = True
            dst.dirty = True


class Relay:
    """One app stream and its upstream stream."""

    __slots__ = ("app", "app_sid", "up", "up_sid", "to_up", "to_app")

    def __init__(self, app: H2Side, app_sid: int, up: H2Side, up_sid: int) -> None:
        self.app, self.app_sid, self.up, self.up_sid = app, app_sid, up, up_sid
        self.to_up = Leg(self, app, app_sid, up, up_sid)
        self.to_app = Leg(self, up, up_sid, app, app_sid)

    def forget(self) -> None:
        self.app.relays.pop(self.app_sid, None)
        self.up.relays.pop(self.up_sid, None)


class H2Side(asyncio.Protocol):
    """One HTTP/2 connection (app-facing or upstream) and the relays it carries."""

    def __init__(self, client_side: bool, window: int) -> None:
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=client_side,
                header_encoding=None,
                # forwarded headers were validated when they came in
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.window = window
        self.transport: asyncio.Transport | None = None
        self.relays: dict[int, Relay] = {}  # by this connection's stream id
        self.dirty = False
        self.touched: set[H2Side] = set()
        self.is_app_side = not client_side

    def count(self, n: int) -> None:
        key = "to_app" if self.is_app_side else "to_up"
        COUNTERS[f"frames_{key}"] += 1
        COUNTERS[f"bytes_{key}"] += n

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if hasattr(transport, "get_extra_info"):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn.initiate_connection()
        self.conn.update_settings(
            {
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.window,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 10_000,
            }
        )
        self.conn.increment_flow_control_window(self.window * 16)
        self.transport.write(self.conn.data_to_send())

    def write_out(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)
        self.dirty = False

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.write_out()
            if self.transport is not None:
                self.transport.close()
            return
        touched = self.touched
        for event in events:
            self.handle(event, touched)
        self.write_out()
        for side in touched:
            if side.dirty:
                side.write_out()
        touched.clear()

    def handle(self, event: h2.events.Event, touched: set[H2Side]) -> None:
        raise NotImplementedError

    def on_data(self, event: h2.events.DataReceived, touched: set[H2Side]) -> None:
        relay = self.relays.get(event.stream_id)
        if relay is None:
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        leg = relay.to_up if self.is_app_side else relay.to_app
        leg.chunks.append((event.data, event.flow_controlled_length))
        if event.stream_ended is not None:
            leg.tail = ()
        leg.flush()
        touched.add(leg.dst)

    def on_end(self, stream_id: int, tail: Any, touched: set[H2Side]) -> None:
        relay = self.relays.get(stream_id)
        if relay is None:
            return
        leg = relay.to_up if self.is_app_side else relay.to_app
        if leg.tail is None:
            leg.tail = tail
        leg.flush()
        touched.add(leg.dst)

    def on_reset(self, stream_id: int, code: int, touched: set[H2Side]) -> None:
        relay = self.relays.get(stream_id)
        if relay is None:
            return
        relay.forget()
        other, sid = (relay.up, relay.up_sid) if self.is_app_side else (relay.app, relay.app_sid)
        with contextlib.suppress(*STREAM_ERRORS):
            other.conn.reset_stream(sid, code)
            other.dirty = True
            touched.add(other)

    def on_window(self, stream_id: int, touched: set[H2Side]) -> None:
        # our peer gave us room: flush the legs that send on this connection
        relays = self.relays.values() if stream_id == 0 else [self.relays.get(stream_id)]
        for relay in list(relays):
            if relay is None:
                continue
            leg = relay.to_app if self.is_app_side else relay.to_up
            leg.flush()
            touched.add(leg.src)

    def connection_lost(self, exc: Exception | None) -> None:
        for relay in list(self.relays.values()):
            relay.forget()
            other, sid = (
                (relay.up, relay.up_sid) if self.is_app_side else (relay.app, relay.app_sid)
            )
            with contextlib.suppress(*STREAM_ERRORS):
                other.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                other.write_out()
        self.transport = None


class UpstreamSide(H2Side):
    """The pooled connection to the upstream (one, opened at start)."""

    def __init__(self, window: int) -> None:
        super().__init__(client_side=True, window=window)
        self.ready = False
        self.closed = asyncio.get_running_loop().create_future()

    def has_room(self) -> bool:
        return (
            self.ready
            and self.transport is not None
            # our own count: h2's open_outbound_streams walks every stream on each call
            and len(self.relays) < self.conn.remote_settings.max_concurrent_streams
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.ready = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.ready = False
        super().connection_lost(exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def handle(self, event: h2.events.Event, touched: set[H2Side]) -> None:
        if isinstance(event, h2.events.DataReceived):
            self.on_data(event, touched)
        elif isinstance(event, h2.events.ResponseReceived):
            relay = self.relays.get(event.stream_id)
            if relay is None:
                return
            # a trailers-only answer (e.g. UNAVAILABLE) must stay one HEADERS frame
            ended = event.stream_ended is not None
            with contextlib.suppress(*STREAM_ERRORS):
                relay.app.conn.send_headers(relay.app_sid, event.headers, end_stream=ended)
                relay.app.dirty = True
                touched.add(relay.app)
            if ended:
                relay.to_app.done = True
                relay.forget()
        elif isinstance(event, h2.events.TrailersReceived):
            self.on_end(event.stream_id, event.headers, touched)
        elif isinstance(event, h2.events.StreamEnded):
            self.on_end(event.stream_id, (), touched)
        elif isinstance(event, h2.events.WindowUpdated):
            self.on_window(event.stream_id, touched)
        elif isinstance(event, h2.events.StreamReset):
            self.on_reset(event.stream_id, event.error_code, touched)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.ready = False  # GOAWAY: no new streams; open ones may still finish


class AppSide(H2Side):
    """One app connection."""

    def __init__(self, upstream: UpstreamSide, window: int) -> None:
        super().__init__(client_side=False, window=window)
        self.upstream = upstream

    def handle(self, event: h2.events.Event, touched: set[H2Side]) -> None:
        if isinstance(event, h2.events.DataReceived):
            self.on_data(event, touched)
        elif isinstance(event, h2.events.RequestReceived):
            self.on_request(event, touched)
        elif isinstance(event, h2.events.StreamEnded):
            self.on_end(event.stream_id, (), touched)
        elif isinstance(event, h2.events.WindowUpdated):
            self.on_window(event.stream_id, touched)
        elif isinstance(event, h2.events.StreamReset):
            self.on_reset(event.stream_id, event.error_code, touched)
        elif isinstance(event, h2.events.ConnectionTerminated) and self.transport is not None:
            self.transport.close()

    def on_request(self, event: h2.events.RequestReceived, touched: set[H2Side]) -> None:
        up = self.upstream
        sid = event.stream_id
        if not up.has_room():
            self.conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        headers = [(k, v) for k, v in event.headers if k not in HOP_BY_HOP]
        up_sid = up.conn.get_next_available_stream_id()
        ended = event.stream_ended is not None
        up.conn.send_headers(up_sid, headers, end_stream=ended)
        relay = Relay(self, sid, up, up_sid)
        if ended:
            relay.to_up.done = True
        self.relays[sid] = relay
        up.relays[up_sid] = relay
        up.dirty = True
        touched.add(up)
        COUNTERS["streams"] += 1


async def serve(listen: str, upstream: str, window: int) -> None:
    loop = asyncio.get_running_loop()
    up_host, up_port = upstream.rsplit(":", 1)
    _, up = await loop.create_connection(lambda: UpstreamSide(window), up_host, int(up_port))
    host, port = listen.rsplit(":", 1)
    server = await loop.create_server(lambda: AppSide(up, window), host, int(port), backlog=4096)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(json.dumps(COUNTERS), flush=True))
    print(f"h2 relay on {listen} -> {upstream}", flush=True)
    waiters = {asyncio.ensure_future(stop.wait()), up.closed}
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    server.close()
    if not stop.is_set():
        raise SystemExit("upstream connection lost (this prototype does not reconnect)")


def main() -> None:
    p = argparse.ArgumentParser(description="HTTP/2 frame-level gRPC relay (a bench prototype)")
    p.add_argument("--listen", required=True, help="host:port for the app's connections")
    p.add_argument("--upstream", required=True, help="host:port of the cleartext h2 upstream")
    p.add_argument(
        "--window", type=int, default=1 << 20, help="per-stream receive window, bytes (1 MiB)"
    )
    p.add_argument("--no-uvloop", action="store_true", help="the default asyncio loop")
    args = p.parse_args()
    if not args.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.install()
    asyncio.run(serve(args.listen, args.upstream, args.window))


if __name__ == "__main__":
    main()
