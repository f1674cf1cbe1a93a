#!/usr/bin/env python3
"""The floor: the least an HTTP/1.1 reverse proxy written in Python does, on uvloop and httptools.

A peer for ``bench/http_proxy.py`` (``--only floor``) and ``bench/instructions.py`` (which
always counts it, with and without ``--tasks``), not a product: it answers what any Python proxy
on the sidecar's stack pays before doing anything of its own, so the sidecar's cost reads as the
floor's plus its own work. Per app connection it opens one upstream connection; each request is
parsed (llhttp, through httptools' callbacks for the URL and the message's end, none per header),
sent upstream as a new minimal head (the path without its first segment, ``host`` only) and its
response, parsed to find its end, relayed to the app as the upstream sent it. No routing,
headers, policies, metrics, timeouts, errors or bodies on requests: enough for the bench's GETs
and nothing more.

With ``--tasks`` the same work takes asyncio's usual shape, the sidecar's: each connection's
requests answered in order by one worker task, which waits on a future for the next request and
on another for the upstream's answer (each woken through the loop), then writes the answer. The
difference between the two prices that shape alone.

    python bench/floor_proxy.py LISTEN_PORT UPSTREAM_PORT [--tasks]
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import deque

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    """The upstream side: responses relayed as they arrive, parsed only to find their end."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.app.upstream_ready(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)
        app = self.app.transport
        if app is not None:
            app.write(data)

    def on_message_complete(self) -> None:
        pass  # the relay above already sent every byte of it

    def connection_lost(self, exc: Exception | None) -> None:
        if self.app.transport is not None:
            self.app.transport.close()


def request_head(url: bytes) -> bytes:
    """The upstream's request for ``url``: its path without the first segment."""
    cut = url.find(b"/", 1)
    return b"GET " + (url[cut:] if cut > 0 else b"/") + b" HTTP/1.1\r\nhost: upstream\r\n\r\n"


class App(asyncio.Protocol):
    """The app side: each request parsed and sent upstream once its head is complete."""

    upstream_class: type[Upstream] = Upstream

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.upstream: Upstream | None = None
        self.pending: list[bytes] = []
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        loop = asyncio.get_running_loop()
        upstream = self.upstream_class
        loop.create_task(
            loop.create_connection(lambda: upstream(self), "127.0.0.1", self.upstream_port)
        )

    def upstream_ready(self, upstream: Upstream) -> None:
        self.upstream = upstream
        for data in self.pending:
            self.parser.feed_data(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.pending.append(data)
        else:
            self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        up = self.upstream
        assert up is not None and up.transport is not None
        up.transport.write(request_head(self.url))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


class TaskUpstream(Upstream):
    """The upstream side for ``--tasks``: the answer handed to the waiting task once whole."""

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self.parts: list[bytes] = []
        self.answer: asyncio.Future[bytes] | None = None

    def data_received(self, data: bytes) -> None:
        self.parts.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        answer = self.answer
        if answer is not None and not answer.done():
            answer.set_result(b"".join(self.parts))
        self.parts.clear()


class TaskApp(App):
    """The app side for ``--tasks``: requests queued for the connection's worker task."""

    upstream_class = TaskUpstream

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        # held: asyncio.get_running_loop() costs a getpid() system call per call on Python 3.11
        self.loop = asyncio.get_running_loop()
        self.queue: deque[bytes] = deque()
        self.worker: asyncio.Task[None] | None = None
        self.next_ready: asyncio.Future[None] | None = None

    def on_message_complete(self) -> None:
        self.queue.append(self.url)
        if self.worker is None:
            self.worker = self.loop.create_task(self.work())
        elif self.next_ready is not None and not self.next_ready.done():
            self.next_ready.set_result(None)

    async def work(self) -> None:
        loop = self.loop
        while True:
            if not self.queue:
                self.next_ready = loop.create_future()
                await self.next_ready
                continue
            answer = await self.call(self.queue.popleft())
            if self.transport is not None:
                self.transport.write(answer)

    async def call(self, url: bytes) -> bytes:
        up = self.upstream
        assert isinstance(up, TaskUpstream) and up.transport is not None
        up.answer = self.loop.create_future()
        up.transport.write(request_head(url))
        return await up.answer


async def serve(port: int, upstream_port: int, tasks: bool) -> None:
    loop = asyncio.get_running_loop()
    app = TaskApp if tasks else App
    server = await loop.create_server(lambda: app(upstream_port), "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)  # how the benches stop it: exit 0
    async with server:
        await stop.wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]), int(sys.argv[2]), "--tasks" in sys.argv[3:]))
