"""An in-memory transport and ``create_connection`` for upstream unit tests: no sockets.

:class:`FakeTransport` records what is written and delivers ``connection_lost`` on the next loop
turn, as asyncio's transports do. :class:`FakeConnector` stands in for ``loop.create_connection``
and can refuse, hang, or connect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sidecar.upstream.connection import OwnerOf, UpstreamConnection


class FakeTransport:
    def __init__(self, protocol: asyncio.Protocol) -> None:
        self.protocol = protocol
        self.written: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def writelines(self, data: Any) -> None:
        for d in data:
            self.write(d)

    def abort(self) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class FakeConnector:
    """``loop.create_connection`` replacement: ``mode`` is "connect", "refuse" or "hang"."""

    def __init__(self) -> None:
        self.mode = "connect"
        self.made: list[UpstreamConnection] = []

    async def __call__(
        self, factory: Callable[[], UpstreamConnection], host: str, port: int, **kw: Any
    ) -> tuple[FakeTransport, UpstreamConnection]:
        if self.mode == "refuse":
            raise ConnectionRefusedError(111, f"Connect call failed ('{host}', {port})")
        if self.mode == "hang":
            await asyncio.Event().wait()
        conn = factory()
        transport = FakeTransport(conn)
        conn.connection_made(transport)  # type: ignore[arg-type]
        self.made.append(conn)
        return transport, conn


def standalone() -> tuple[UpstreamConnection, FakeTransport, list[str]]:
    """A connection outside any pool; ``events`` records "free" and "lost"."""
    events: list[str] = []
    conn = UpstreamConnection(
        OwnerOf(lambda c: events.append("free"), lambda c: events.append("lost"))
    )
    transport = FakeTransport(conn)
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, events


def respond(conn: UpstreamConnection, data: bytes, head_only: bool = False) -> Any:
    """Run one exchange on ``conn`` answered by ``data``; returns the head future."""
    fut = conn.begin(head_only)
    conn.request_sent = True
    conn.data_received(data)
    return fut


async def settle() -> None:
    """Let call_soon callbacks (connection_lost) run."""
    for _ in range(3):
        await asyncio.sleep(0)
