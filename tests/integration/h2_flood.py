"""A raw HTTP/2 flooder for tests of the gRPC port's flood protection: it sends cheap frames as
fast as the socket takes them (rapid reset: HEADERS + RST_STREAM(CANCEL) pairs, or 1000 HEADERS
then their 1000 RST_STREAMs; PING, SETTINGS, empty DATA, WINDOW_UPDATE, PRIORITY or CONTINUATION
floods), acknowledges the server's SETTINGS, reads what it answers, and reports how each
connection ended (the GOAWAY error code, after how long, how many frames it sent).

Run as a child process (``python -m tests.integration.h2_flood --port P --kind rapid_reset``),
so the flood shares neither the GIL nor the event loop of the test that measures its good
calls; the report is one JSON array on stdout, an object per connection. Bounded: ``--seconds``
and ``--max-frames`` per connection; ``--reconnect`` opens a new connection after each close
until ``--seconds`` are over.

Not a gRPC client: no call it opens is ever answered in full or read.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 2, 3, 4, 6, 7, 8
CONTINUATION = 9
ACK = END_STREAM = 0x1
END_HEADERS = 0x4
CANCEL = 8
#: frames per chunk handed to sendall (about 20-60 KiB).
CHUNK_FRAMES = 2000


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame: the 9-byte header, then ``payload``."""
    return (
        len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload
    )


def request_blocks(path: str = "/echo.v1.Echo/Unary") -> tuple[bytes, bytes]:
    """A gRPC request's header block, HPACK-encoded twice by one encoder: the first adds its
    fields to the dynamic table, the second only refers to them (a few bytes, as a real client
    sends its next calls), so it can open any number of streams after the first."""
    encoder = hpack.Encoder()
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    return encoder.encode(fields), encoder.encode(fields)


def opening() -> bytes:
    """The client preface and an empty SETTINGS frame."""
    return PREFACE + frame(SETTINGS, 0, 0)


def chunks(kind: str, path: str = "/echo.v1.Echo/Unary") -> Iterator[tuple[bytes, int]]:
    """Endless ``(bytes, frames)`` chunks of one flood kind, stream ids increasing; the calls
    opened call ``path``."""
    first, block = request_blocks(path)
    yield frame(HEADERS, END_HEADERS, 1, first), 1  # one call stays open
    sid = 3
    while True:
        parts: list[bytes] = []
        if kind == "rapid_reset":
            for _ in range(CHUNK_FRAMES // 2):
                parts.append(frame(HEADERS, END_HEADERS, sid, block))
                parts.append(frame(RST_STREAM, 0, sid, CANCEL.to_bytes(4, "big")))
                sid += 2
        elif kind == "late_reset":  # calls reset a turn after they opened: their tasks run
            sids = range(sid, sid + CHUNK_FRAMES, 2)
            parts = [frame(HEADERS, END_HEADERS, i, block) for i in sids]
            parts += [frame(RST_STREAM, 0, i, CANCEL.to_bytes(4, "big")) for i in sids]
            sid += CHUNK_FRAMES
        elif kind == "ping":
            parts = [frame(PING, 0, 0, i.to_bytes(8, "big")) for i in range(CHUNK_FRAMES)]
        elif kind == "settings":
            table_size = (1).to_bytes(2, "big") + (4096).to_bytes(4, "big")
            parts = [frame(SETTINGS, 0, 0, table_size)] * CHUNK_FRAMES
        elif kind == "empty_data":
            parts = [frame(DATA, 0, 1)] * CHUNK_FRAMES
        elif kind == "window_update":
            parts = [frame(WINDOW_UPDATE, 0, 0, (1).to_bytes(4, "big"))] * CHUNK_FRAMES
        elif kind == "continuation":  # one header block that never ends
            if sid == 3:
                parts.append(frame(HEADERS, 0, sid, b""))
                sid = 5
            parts += [frame(CONTINUATION, 0, 3, b"\x00" * 16)] * CHUNK_FRAMES
        elif kind == "priority":
            for _ in range(CHUNK_FRAMES):
                parts.append(frame(PRIORITY, 0, sid, bytes(4) + b"\x0f"))
                sid += 2
        else:
            raise ValueError(f"unknown flood kind {kind!r}")
        yield b"".join(parts), len(parts)


@dataclass
class Connection:
    """How one flooding connection ended."""

    frames: int = 0
    #: the GOAWAY error code the server sent (11: ENHANCE_YOUR_CALM), None without one.
    goaway: int | None = None
    #: seconds from the first byte sent to the server's GOAWAY (None: none came).
    goaway_after: float | None = None
    #: seconds from the first byte sent to the connection's end (closed by the server, or the
    #: flood's bound reached).
    seconds: float = 0.0
    closed_by_server: bool = False


class _Reader(threading.Thread):
    """Reads the server's frames until it closes: notes its GOAWAY and when it came."""

    def __init__(self, sock: socket.socket, started: float, conn: Connection) -> None:
        super().__init__(daemon=True)
        self.sock, self.started, self.conn = sock, started, conn
        self.closed = threading.Event()
        self.stop = threading.Event()
        #: SETTINGS frames the server sent and the flood has not acknowledged yet
        self.settings = 0
        self.first_settings = threading.Event()

    def run(self) -> None:
        buf = bytearray()
        try:
            while not self.stop.is_set():
                try:
                    data = self.sock.recv(1 << 16)
                except TimeoutError:
                    continue  # the socket's timeout is for sends; keep reading
                if not data:
                    self.conn.closed_by_server = True
                    break
                buf += data
                while len(buf) >= 9:
                    length = int.from_bytes(buf[:3], "big")
                    if len(buf) < 9 + length:
                        break
                    if buf[3] == SETTINGS and not buf[4] & ACK:
                        self.settings += 1
                        self.first_settings.set()
                    if buf[3] == GOAWAY and self.conn.goaway is None and length >= 8:
                        self.conn.goaway = int.from_bytes(buf[13:17], "big")
                        self.conn.goaway_after = time.monotonic() - self.started
                    del buf[: 9 + length]
        except OSError:
            self.conn.closed_by_server = True  # reset by the server
        finally:
            self.closed.set()


def flood_once(
    port: int,
    kind: str,
    until: float,
    max_frames: int,
    read: bool = True,
    path: str = "/echo.v1.Echo/Unary",
) -> Connection:
    """One connection flooding ``kind`` until the server closes it, ``until`` (a monotonic
    time) passes, or ``max_frames`` were sent."""
    conn = Connection()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(0.5)  # a send the server does not take is retried until the deadline
    started = time.monotonic()
    reader = _Reader(sock, started, conn)
    if read:
        reader.start()
    acked = 0
    try:
        sock.sendall(opening())
        if read:  # acknowledged, the server's SETTINGS (MAX_CONCURRENT_STREAMS...) apply
            reader.first_settings.wait(5)
        for data, count in chunks(kind, path):
            if reader.closed.is_set() or time.monotonic() >= until or conn.frames >= max_frames:
                break
            if reader.settings > acked:
                data = frame(SETTINGS, ACK, 0) * (reader.settings - acked) + data
                acked = reader.settings
            view = memoryview(data)
            while view and not reader.closed.is_set() and time.monotonic() < until:
                try:
                    sent = sock.send(view)
                except TimeoutError:
                    continue
                view = view[sent:]
            conn.frames += count
    except OSError:
        conn.closed_by_server = True  # reset by the server
    if read:  # give the server's GOAWAY and close a moment to arrive
        reader.closed.wait(max(0.0, min(2.0, until + 2.0 - time.monotonic())))
    conn.seconds = time.monotonic() - started
    reader.stop.set()
    if read:
        reader.join(2)
    sock.close()
    return conn


def flood(
    port: int,
    kind: str,
    *,
    seconds: float,
    max_frames: int,
    reconnect: bool = False,
    read: bool = True,
    path: str = "/echo.v1.Echo/Unary",
    on_connection: Callable[[Connection], None] | None = None,
) -> list[Connection]:
    """Flood ``kind`` for up to ``seconds``; with ``reconnect``, a new connection each time the
    server closes one."""
    until = time.monotonic() + seconds
    done: list[Connection] = []
    while True:
        conn = flood_once(port, kind, until, max_frames, read, path)
        done.append(conn)
        if on_connection is not None:
            on_connection(conn)
        if not reconnect or time.monotonic() >= until:
            return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", default="rapid_reset")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-frames", type=int, default=2_000_000)
    parser.add_argument("--reconnect", action="store_true")
    parser.add_argument("--no-read", action="store_true", help="never read the server's bytes")
    parser.add_argument("--path", default="/echo.v1.Echo/Unary", help="the method calls open")
    args = parser.parse_args()
    conns = flood(
        args.port,
        args.kind,
        seconds=args.seconds,
        max_frames=args.max_frames,
        reconnect=args.reconnect,
        read=not args.no_read,
        path=args.path,
    )
    print(json.dumps([asdict(c) for c in conns]))


if __name__ == "__main__":
    main()
