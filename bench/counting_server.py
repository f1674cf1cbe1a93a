"""A minimal HTTP/1.1 server for the event benchmarks: it counts requests and answers 200.

The pub/sub bench delivers to it as the app, the webhooks bench as the receiver. It is raw
asyncio (a Protocol per connection, keep-alive, no framework), so that what it costs per
request stays small next to what is measured, and it can *hold* every request unanswered
until :meth:`CountingServer.release`: the benchmarks hold the first deliveries while they fill
the broker or the queue, then release and time the backlog. Each request goes to a callback
with its path and lower-cased headers, which returns the status (the bench's check of the
request: an id seen, a signature verified). Not here: chunked request bodies (the sidecar's
deliveries carry a content-length), pipelining beyond one request at a time per connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: (path, headers, body) -> status
Check = Callable[[str, dict[str, str], bytes], int]
REASONS = {200: b"OK", 400: b"Bad Request", 401: b"Unauthorized"}
MAX_HEAD = 64 * 1024


class CountingServer:
    """``await CountingServer(check).start()``; ``url``; ``answered``; ``hold``/``release``."""

    def __init__(self, check: Check) -> None:
        self.check = check
        self.answered = 0
        self.refused = 0  # answered with a status other than 200
        self.first_at: float | None = None  # monotonic time of the first and last answer
        self.last_at: float | None = None
        self.holding = False
        self.held: list[tuple[asyncio.Transport, bytes]] = []
        self._server: asyncio.Server | None = None
        self.transports: set[asyncio.Transport] = set()
        self.url = ""

    async def start(self) -> CountingServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for transport in self.transports:  # keep-alive connections would hold wait_closed
                transport.close()
            await self._server.wait_closed()

    def release(self) -> None:
        """Answer every held request and stop holding."""
        self.holding = False
        held, self.held = self.held, []
        for transport, answer in held:
            self._answer(transport, answer)

    def handle(
        self, transport: asyncio.Transport, path: str, headers: dict[str, str], body: bytes
    ) -> None:
        status = self.check(path, headers, body)
        answer = b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\n\r\n" % (
            status,
            REASONS.get(status, b"X"),
        )
        if status != 200:
            self.refused += 1
        if self.holding:
            self.held.append((transport, answer))
        else:
            self._answer(transport, answer)

    def _answer(self, transport: asyncio.Transport, answer: bytes) -> None:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        self.last_at = now
        self.answered += 1
        if not transport.is_closing():
            transport.write(answer)


class _Connection(asyncio.Protocol):
    def __init__(self, server: CountingServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.transports.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server.transports.discard(self.transport)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.close()
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = head[0].split(" ")[1] if " " in head[0] else "/"
            self.server.handle(self.transport, path, headers, body)
