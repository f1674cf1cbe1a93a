"""A tiny raw-socket HTTP/1.1 client for listener tests: exact bytes out, exact framing back.

httpx and aiohttp normalise what they send and hide how a response was framed; these helpers do
neither, so a test can send a malformed request byte for byte and see whether the sidecar answered,
how (Content-Length, chunked, nothing) and whether it closed the connection afterwards.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

#: Every wait on the sidecar is bounded by this (seconds).
WAIT = 5.0


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    #: "length", "chunked", "close" or "none" (no body by the rules of HEAD/1xx/204/304).
    framing: str = "none"

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]


class RawConnection:
    """One TCP connection to the sidecar; ``send`` bytes, ``response()`` reads one answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1 << 20), WAIT
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), WAIT)

    async def response(
        self, *, head: bool = False, interim: bool = False, timeout: float = WAIT
    ) -> RawResponse:
        """Read one response (1xx skipped unless ``interim``); ``head``: it answers a HEAD."""
        return await asyncio.wait_for(self._response(head, interim), timeout)

    async def _response(self, head: bool, interim: bool) -> RawResponse:
        while True:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw[:-4].decode("latin-1").split("\r\n")
            version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
            assert version in ("HTTP/1.1", "HTTP/1.0"), lines[0]
            headers = []
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.append((name.strip().lower(), value.strip()))
            resp = RawResponse(int(status), reason, headers)
            if resp.status < 200:
                if interim:
                    return resp
                continue
            break
        if head or resp.status in (204, 304):
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te is not None:
            assert te.lower() == "chunked", te
            resp.framing = "chunked"
            parts = []
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while await self.reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                parts.append(await self.reader.readexactly(size))
                assert await self.reader.readexactly(2) == b"\r\n"
            resp.body = b"".join(parts)
        elif cl is not None:
            resp.framing = "length"
            resp.body = await self.reader.readexactly(int(cl))
        else:
            resp.framing = "close"
            resp.body = await self.reader.read()
        return resp

    async def closed(self, timeout: float = WAIT) -> bool:
        """True once the sidecar closed the connection (EOF or reset) within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    data = await self.reader.read(65536)
                    if not data:
                        return True
        except (ConnectionError, asyncio.IncompleteReadError):
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), WAIT)
        except (ConnectionError, TimeoutError):
            pass

    async def __aenter__(self) -> RawConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def get(path: str = "/up/", host: str = "127.0.0.1", extra: str = "") -> bytes:
    """A well-formed keep-alive GET."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode("latin-1")


async def send_and_read(port: int, data: bytes) -> tuple[RawResponse, bool]:
    """Send ``data`` on a fresh connection; the response and whether the connection closed."""
    async with await RawConnection.open(port) as conn:
        await conn.send(data)
        resp = await conn.response()
        return resp, await conn.closed()


class KeepAliveProber:
    """A well-behaved app next to the hostile one: GETs on one keep-alive connection in a loop.

    ``async with KeepAliveProber(port) as p: ...`` then ``p.statuses`` (every answer) and
    ``p.failures`` (anything else: resets, timeouts, malformed answers).
    """

    def __init__(self, port: int, path: str = "/up/") -> None:
        self.port = port
        self.path = path
        self.statuses: list[int] = []
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        try:
            async with await RawConnection.open(self.port) as conn:
                while not self._stop.is_set():
                    await conn.send(get(self.path))
                    resp = await conn.response()
                    self.statuses.append(resp.status)
                    if resp.header("connection") == "close":
                        self.failures.append("the sidecar closed the good keep-alive connection")
                        return
        except Exception as e:
            self.failures.append(f"{type(e).__name__}: {e}")

    async def wait_for(self, count: int) -> None:
        """Until ``count`` more answers arrived (bounded)."""
        target = len(self.statuses) + count
        async with asyncio.timeout(WAIT):
            while len(self.statuses) < target and not self.failures:  # noqa: ASYNC110
                await asyncio.sleep(0.005)

    async def __aenter__(self) -> KeepAliveProber:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self.wait_for(1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.wait_for(1)
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, WAIT)
