"""The control ports' own small HTTP/1.1 server: answers probes and scrapes without aiohttp.

Almost every request a pod's admin and metrics ports see is a kubelet probe (``/healthz``,
``/readyz``) or a Prometheus scrape (``/metrics``). This protocol answers those itself, from the
same :class:`~sidecar.control_answers.Answer` the aiohttp handlers serve, byte for byte the same
(:mod:`sidecar.control_answers`), behind the same ``Host`` check. So a sidecar
that is only probed and scraped never imports aiohttp (about 12 MB of resident memory).

Any other request (the admin API, the dashboard, a plugin's route, a body, HTTP/1.0, an upgrade,
a path with ``%``...) is handed to aiohttp with its connection: reading pauses, the port builds
its aiohttp server once (:mod:`sidecar.control_port`), and the connection's protocol becomes
aiohttp's handler, fed every byte read so far. From then on aiohttp serves that connection.

Bounded: a probe's head is at most :data:`MAX_HEAD` bytes (431 beyond), must arrive within
:data:`HEAD_TIMEOUT` of its first byte (408), an idle connection closes after
:data:`IDLE_TIMEOUT`; a head that is not HTTP/1.x gets 400. Pipelined probes are answered in
order; reading pauses while the peer does not read its answers.

Not here: the connection cap and aiohttp's lazy set-up (:mod:`sidecar.control_port`), what the
answers say and how they are written (:mod:`sidecar.admin_routes`,
:mod:`sidecar.control_answers`), which ``Host`` values are accepted
(:mod:`sidecar.host_guard`).
"""

from __future__ import annotations

__all__ = [
    "HEAD_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_HEAD",
    "LightProtocol",
    "LightRoutes",
    "Port",
    "Refusal",
]

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol

import httptools

from .control_answers import NOT_FOUND, Answer, render
from .hosts import split_host

#: A probe's request head (request line and headers) is at most this long; 431 beyond.
MAX_HEAD = 16 * 1024
#: Seconds a request head may take to arrive once its first byte did (408 after).
HEAD_TIMEOUT = 10.0
#: Seconds a connection may stay open between requests (longer than any scrape interval).
IDLE_TIMEOUT = 120.0

#: A path with no percent-escapes, dot segments or empty segments: aiohttp routes it as written,
#: so a path of this shape that is none of a port's routes is aiohttp's 404 too.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*/?")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class Refusal(Protocol):
    def __call__(self, host: str) -> Answer: ...


@dataclass(frozen=True)
class LightRoutes:
    """What one port answers itself: ``answers`` by path (each made at the request), for
    ``methods``; the ``Host`` check (``accept`` a host, else ``refuse(raw Host value)``); and,
    when ``not_found`` is set, aiohttp's 404 for any other plain path (the port has no other
    routes: nothing would be gained by loading aiohttp to say so)."""

    answers: dict[str, Callable[[], Answer]]
    methods: frozenset[bytes]
    accept: Callable[[str], bool]
    refuse: Refusal
    not_found: bool = False


class Port(Protocol):
    """What a connection needs of its port (:class:`sidecar.control_port.ControlPort`)."""

    routes: LightRoutes
    #: the port's connections still served here, oldest first (the cap reads it)
    live: dict[LightProtocol, None]

    def hand_over(self, light: LightProtocol, transport: asyncio.Transport, data: bytes) -> None:
        """Give the connection, and ``data`` (every byte read and not answered), to aiohttp."""


class _Head:
    """httptools callbacks for one request head."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False
        self.keep_alive = False
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)

    def feed(self, head: bytes) -> None:
        assert self.parser is not None
        try:
            self.parser.feed_data(head)
        finally:
            self.parser = None  # the parser and its callbacks point at each other: freed now

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        # read here: the parser forgets it once the message is complete
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.complete = True


class LightProtocol(asyncio.Protocol):
    """One control-port connection while it only asks for probes and scrapes (see the module)."""

    def __init__(self, port: Port) -> None:
        self.port = port
        self.routes = port.routes
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._timer: asyncio.TimerHandle | None = None
        self._write_paused = False
        #: a request is being handed to aiohttp (not idle: the cap does not evict it)
        self.handing_over = False

    # --- asyncio callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self.port.live[self] = None
        self._arm(IDLE_TIMEOUT)

    def connection_lost(self, exc: Exception | None) -> None:
        self.port.live.pop(self, None)
        self._disarm()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if not self._buffer:
            # a request's first byte: its head must follow soon (armed once, so a head that
            # trickles in byte by byte does not push its deadline back)
            self._arm(HEAD_TIMEOUT)
        self._buffer += data
        self._serve()

    def eof_received(self) -> bool:
        return False  # the transport closes once the answers written so far are sent

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is not None and not self.handing_over:
            self.transport.resume_reading()
            self._serve()

    # --- serving ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection now (evicted by the cap, or the port stops)."""
        self.port.live.pop(self, None)
        if self.transport is not None:
            self.transport.close()

    def _serve(self) -> None:
        while self._buffer and self.transport is not None and not self.handing_over:
            if self._write_paused or self.transport.is_closing():
                return
            end = self._buffer.find(b"\r\n\r\n")
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0 or line_end > MAX_HEAD:  # (a head read at once is bounded too)
                if len(self._buffer) > MAX_HEAD:
                    self._fail(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            method, target, version = _request_line(self._buffer[:line_end])
            if not method:
                self._fail(HTTPStatus.BAD_REQUEST)
                return
            if not self._answerable(method, target, version):
                self._start_hand_over()
                return
            if end < 0 or end + 4 > MAX_HEAD:
                if len(self._buffer) > MAX_HEAD:
                    self._fail(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return
            if not self._answer(method, target, self._buffer[: end + 4]):
                return  # handed over (with this head), or closed
            self._buffer = self._buffer[end + 4 :]
            # the next request's first bytes already came (pipelined), or it is idle till then
            self._arm(HEAD_TIMEOUT if self._buffer else IDLE_TIMEOUT)

    def _answerable(self, method: bytes, target: bytes, version: bytes) -> bool:
        """Whether this request line may be answered here (its head decides the rest)."""
        if version != b"HTTP/1.1" or method not in self.routes.methods:
            return False
        path = target.split(b"?", 1)[0].decode("ascii", "replace")
        if "#" in path or "%" in path:
            return False
        return path in self.routes.answers or (
            self.routes.not_found and _PLAIN_PATH.fullmatch(path) is not None
        )

    def _answer(self, method: bytes, target: bytes, head: bytes) -> bool:
        """Answer one request head; ``False`` when the connection stopped being ours."""
        parsed = _Head()
        try:
            parsed.feed(head)
        except httptools.HttpParserUpgrade:
            self._start_hand_over()
            return False
        except httptools.HttpParserError:
            self._fail(HTTPStatus.BAD_REQUEST)
            return False
        hosts = [v for n, v in parsed.headers if n == b"host"]
        if not parsed.complete or len(hosts) != 1 or _other_than_a_probe(parsed.headers):
            self._start_hand_over()  # a body, no Host, an upgrade: as aiohttp says
            return False
        keep_alive = parsed.keep_alive
        host = hosts[0].decode("utf-8", "surrogateescape")
        if self.routes.accept(split_host(host)[0]):
            path = target.split(b"?", 1)[0].decode("ascii")
            make = self.routes.answers.get(path)
            answer = make() if make is not None else NOT_FOUND
        else:
            answer = self.routes.refuse(host)
        assert self.transport is not None
        self.transport.write(render(answer, head_only=method == b"HEAD", close=not keep_alive))
        if not keep_alive:
            self.transport.close()
            return False
        return True

    def _fail(self, status: HTTPStatus) -> None:
        """Answer a head that cannot be served (``status``) and close."""
        if self.transport is None:
            return
        answer = Answer(status, f"{status.value} {status.phrase}\n".encode())
        self.transport.write(render(answer, head_only=False, close=True))
        self.transport.close()
        self.port.live.pop(self, None)
        self._buffer = b""

    def _start_hand_over(self) -> None:
        transport = self.transport
        assert transport is not None
        self.handing_over = True
        self._disarm()
        transport.pause_reading()  # no byte is read until aiohttp's handler owns the connection
        self.port.hand_over(self, transport, self._buffer)
        self._buffer = b""

    def handed_over(self) -> None:
        """The connection is aiohttp's now (or gone): this protocol no longer sees it."""
        self.port.live.pop(self, None)
        self.transport = None

    # --- timers -------------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport is None or self.handing_over:
            return
        if self._buffer:
            self._fail(HTTPStatus.REQUEST_TIMEOUT)  # a head trickling in (a slow-loris)
        else:
            self.close()  # idle since its last answer


def _request_line(line: bytes) -> tuple[bytes, bytes, bytes]:
    """``(method, target, version)``, or three empty strings when ``line`` is not HTTP/1.x."""
    parts = line.split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        return b"", b"", b""
    if parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        return b"", b"", b""
    return parts[0], parts[1], parts[2]


def _other_than_a_probe(headers: list[tuple[bytes, bytes]]) -> bool:
    """Headers a probe never sends and aiohttp has its own say on (a body, an upgrade)."""
    return any(n in (b"content-length", b"transfer-encoding", b"upgrade") for n, _ in headers)
