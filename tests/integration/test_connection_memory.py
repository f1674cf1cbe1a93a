"""Closed connections are freed the moment they close, not when the cyclic collector runs.

A connection and its httptools parser point at each other. Left as a cycle, thousands of closed
connections (a burst of idle clients, an app restarting its pool) wait for the collector's oldest
generation, which may not run for a long time, and the process keeps their memory: nine bursts
of 5000 idle connections took the sidecar from 89 to 134 MB and it stayed there
(``bench/connection_bursts.py`` measures it). These tests disable the collector and count the
connection objects still alive after the connections closed.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from aiohttp import web

from sidecar.grpc.h2_connection import H2Connection
from sidecar.listeners.http_connection import HttpConnection
from sidecar.testing import FakeUpstream, async_wait_until, running_sidecar
from sidecar.upstream.connection import UpstreamConnection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


KINDS = (HttpConnection, UpstreamConnection, H2Connection)


async def test_closed_app_and_upstream_connections_are_freed_without_the_collector(
    no_cyclic_gc: None,
) -> None:
    """A burst of app connections (idle, and each with a call) leaves nothing behind."""

    async def closing(request: web.Request) -> web.Response:
        # the upstream closes each connection, so upstream connections come and go too
        return web.Response(text="ok", headers={"Connection": "close"})

    # what earlier tests in this process still hold is not this test's business
    before = {kind: alive(kind) for kind in KINDS}
    async with FakeUpstream(closing) as up:
        async with running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s:
            for i in range(100):
                reader, writer = await asyncio.open_connection("127.0.0.1", s.http_port)
                if i % 2:
                    writer.write(b"GET /up/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                    assert (await reader.read()).startswith(b"HTTP/1.1 200")
                writer.close()
                await writer.wait_closed()
            for _ in range(50):
                reader, writer = await asyncio.open_connection("127.0.0.1", s.grpc_port)
                writer.write(PREFACE)
                await writer.drain()
                writer.close()
                await writer.wait_closed()
            await async_wait_until(lambda: not s.http.connections, limit=5)
            for kind in KINDS:
                await async_wait_until(lambda k=kind: alive(k) <= before[k], limit=5)
