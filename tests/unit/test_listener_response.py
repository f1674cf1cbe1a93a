"""``write_response``: what happens to a response whose app connection is already gone."""

from __future__ import annotations

import asyncio
from typing import Any

from sidecar.config.models import HttpListenerConfig
from sidecar.exchange import Exchange, Headers, Response
from sidecar.listeners.http import HttpListener
from sidecar.listeners.http_connection import HttpConnection
from sidecar.listeners.http_response import write_response
from sidecar.routing import RouteTable
from sidecar.telemetry.metrics import Metrics


async def test_a_response_for_an_app_that_went_away_still_runs_its_completion_callbacks() -> None:
    """The access log and tracing hear about a call whose app left before the answer (not ok,
    nothing sent), and the streamed body is closed, so no span or line is lost."""
    closed: list[bool] = []

    async def body() -> Any:
        try:
            yield b"never"
        finally:
            closed.append(True)

    stream = body()
    await stream.__anext__()  # started, so closing it runs its finally
    resp = Response(200, Headers(), stream, length=None)
    heard: list[tuple[bool, int]] = []
    resp.on_complete = [lambda ok, sent: heard.append((ok, sent))]
    # a real connection, never connected and closed (a compiled build checks the type)
    conn = HttpConnection(HttpListener(HttpListenerConfig(), RouteTable({}), Metrics()))
    conn.closed = True
    keep = await write_response(conn, Exchange("GET", "/", Headers()), resp)
    assert keep is False
    assert heard == [(False, 0)]
    assert closed == [True]


class _Transport(asyncio.Transport):
    """What a connection writes, kept; never closing on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


async def test_an_answer_after_the_apps_fin_is_not_logged_as_sent() -> None:
    """The app half-closed (its FIN closes the connection): an answer that comes in the moment
    before the connection is lost is not written, and its callbacks hear it was not delivered."""
    conn = HttpConnection(HttpListener(HttpListenerConfig(), RouteTable({}), Metrics()))
    transport = _Transport()
    conn.transport = transport
    assert conn.eof_received() is None  # asyncio then closes the transport
    resp = Response(200, Headers(), b"hello")
    heard: list[tuple[bool, int]] = []
    resp.on_complete = [lambda ok, sent: heard.append((ok, sent))]
    keep = await write_response(conn, Exchange("GET", "/", Headers()), resp)
    assert keep is False
    assert heard == [(False, 0)]
    assert transport.written == []
