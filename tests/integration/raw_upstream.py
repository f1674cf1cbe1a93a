"""A scripted raw-socket upstream for data-path tests: exact bytes back, every connection counted.

aiohttp answers correctly by construction; the sidecar must also survive upstreams that do not.
:class:`RawUpstream` runs ``script(conn)`` for each accepted connection, where ``conn`` reads
requests (:meth:`UpstreamConn.request`) and writes whatever bytes the test wants. It counts the
connections it accepted and notices when the sidecar closes one.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

#: Every wait in these helpers is bounded by this (seconds).
WAIT = 10.0


@dataclass
class RawRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass
class UpstreamConn:
    """One connection from the sidecar, as the script sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    index: int
    requests: list[RawRequest] = field(default_factory=list)

    async def request(self) -> RawRequest | None:
        """The next request on this connection (``None`` when the sidecar closed it)."""
        try:
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), WAIT)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers.append((k.strip().lower(), v.strip()))
        req = RawRequest(method, target, headers, b"")
        if req.header("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            req.body = b"".join(parts)
        elif (n := req.header("content-length")) is not None:
            req.body = await self.reader.readexactly(int(n))
        self.requests.append(req)
        return req

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def closed_by_peer(self, timeout: float = WAIT) -> bool:
        """Wait until the sidecar closes its end; ``False`` if still open after ``timeout``."""
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return data == b""


Script = Callable[[UpstreamConn], Awaitable[None]]


class RawUpstream:
    """``async with RawUpstream(script) as up:`` a server on 127.0.0.1 running ``script`` per
    connection; ``up.conns`` are the connections accepted so far."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.conns: list[UpstreamConn] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = UpstreamConn(reader, writer, len(self.conns))
        self.conns.append(conn)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.script(conn)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # cut every connection: each script then ends on its own (a cancelled connection task
        # would be logged by asyncio's stream machinery as an error)
        for conn in self.conns:
            conn.writer.transport.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=WAIT)
        await self._server.wait_closed()


async def answer_each(conn: UpstreamConn, response: bytes) -> None:
    """A script body: answer every request on the connection with the same bytes."""
    while await conn.request() is not None:
        await conn.send(response)


def ok_response(body: bytes = b"ok", extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{extra}\r\n".encode("latin-1") + body
