"""A small blocking raw HTTP/2 client for the tests of the gRPC port's oversized-metadata
refusal: it writes hand-made frames (HEADERS split into CONTINUATION, DATA, RST_STREAM) with one
HPACK encoder, and reads the server's frames into per-stream answers, honouring the server's
flow-control windows for what it sends. Not a gRPC client library: no retries, no deadlines
beyond each read's bound."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 3, 4, 6, 7, 8, 9,
)  # fmt: skip
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
MAX_FRAME = 16384


def frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + payload


def grpc_message(payload: bytes) -> bytes:
    """A gRPC length-prefixed message (an EchoRequest's ``payload`` field, protobuf-encoded)."""
    body = b"\x0a" + _varint(len(payload)) + payload
    return b"\0" + len(body).to_bytes(4, "big") + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@dataclass
class Answer:
    """What the server sent on one stream."""

    blocks: list[list[tuple[str, str]]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None

    def fields(self) -> dict[str, str]:
        return {k: v for block in self.blocks for k, v in block}


class RawH2:
    """One connection to ``port``; :meth:`call` writes, :meth:`read_until` reads."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 20
        self.answers: dict[int, Answer] = {}
        self.goaway: int | None = None
        self.closed = False
        self.conn_window = 65535
        self.stream_initial = 65535
        self.stream_windows: dict[int, int] = {}
        self._buf = bytearray()
        self._block = bytearray()
        self._block_sid = 0
        self._block_flags = 0
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def close(self) -> None:
        self.sock.close()

    # --- writes ---------------------------------------------------------------------------

    def headers(
        self, sid: int, fields: list[tuple[str, str]], end: bool = False, piece: int = 1000
    ) -> None:
        """A request's header block on ``sid``: HEADERS, then CONTINUATION frames of ``piece``
        bytes each for the rest."""
        block = self.encoder.encode(fields)
        parts = [block[i : i + piece] for i in range(0, len(block), piece)] or [b""]
        out = bytearray()
        for i, part in enumerate(parts):
            last = END_HEADERS if i == len(parts) - 1 else 0
            if i == 0:
                out += frame(HEADERS, last | (END_STREAM if end else 0), sid, part)
            else:
                out += frame(CONTINUATION, last, sid, part)
        self.stream_windows[sid] = self.stream_initial
        self.sock.sendall(out)

    def data(self, sid: int, payload: bytes, end: bool = False, wait: float = 10.0) -> None:
        """``payload`` in DATA frames, each sent once the server's windows have room."""
        offset = 0
        while True:
            chunk = payload[offset : offset + MAX_FRAME]
            last = offset + len(chunk) >= len(payload)
            if chunk:
                size = len(chunk)
                self.read_until(self._room(sid, size), wait)
                self.conn_window -= len(chunk)
                self.stream_windows[sid] -= len(chunk)
            self.sock.sendall(frame(DATA, END_STREAM if end and last else 0, sid, chunk))
            offset += len(chunk)
            if last:
                return

    def _room(self, sid: int, size: int) -> Callable[[], bool]:
        return lambda: min(self.conn_window, self.stream_windows[sid]) >= size

    def reset(self, sid: int, code: int = 8) -> None:
        self.sock.sendall(frame(RST_STREAM, 0, sid, code.to_bytes(4, "big")))

    # --- reads ----------------------------------------------------------------------------

    def read_until(self, done: Callable[[], bool], seconds: float = 10.0) -> None:
        """Read frames until ``done()`` is true; AssertionError past ``seconds``."""
        deadline = time.monotonic() + seconds
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                raise AssertionError(f"not done in {seconds}s (closed: {self.closed})")
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                self.closed = True
                continue
            self._buf += chunk
            self._parse()

    def answered(self, sid: int) -> bool:
        a = self.answers.get(sid)
        return a is not None and (a.ended or a.reset is not None)

    def _parse(self) -> None:
        buf = self._buf
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                return
            kind, flags, sid = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(buf[9 : 9 + length])
            del buf[: 9 + length]
            self._frame(kind, flags, sid, payload)

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        answer = self.answers.setdefault(sid, Answer()) if sid else None
        if kind == SETTINGS and not flags & ACK:
            for i in range(0, len(payload), 6):
                ident, value = (
                    int.from_bytes(payload[i : i + 2]),
                    int.from_bytes(payload[i + 2 : i + 6]),
                )
                if ident == 4:
                    delta = value - self.stream_initial
                    self.stream_initial = value
                    for s in self.stream_windows:
                        self.stream_windows[s] += delta
            self.sock.sendall(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            self.sock.sendall(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            increment = int.from_bytes(payload[:4]) & 0x7FFFFFFF
            if sid == 0:
                self.conn_window += increment
            elif sid in self.stream_windows:
                self.stream_windows[sid] += increment
        elif kind == GOAWAY:
            self.goaway = int.from_bytes(payload[4:8])
        elif kind in (HEADERS, CONTINUATION):
            assert answer is not None
            if kind == HEADERS:
                self._block = bytearray(payload)  # no padding nor priority from the sidecar
                self._block_flags = flags
            else:
                self._block += payload
            if flags & END_HEADERS:
                decoded = self.decoder.decode(bytes(self._block))
                answer.blocks.append([(str(k), str(v)) for k, v in decoded])
                if self._block_flags & END_STREAM:
                    answer.ended = True
        elif kind == DATA:
            assert answer is not None
            answer.data += payload
            if flags & END_STREAM:
                answer.ended = True
        elif kind == RST_STREAM:
            assert answer is not None
            answer.reset = int.from_bytes(payload[:4])
