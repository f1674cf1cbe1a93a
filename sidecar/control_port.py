"""The admin and metrics ports' listening sockets: aiohttp's handlers behind a connection cap.

The data listeners are capped from the open-files limit (:mod:`sidecar.fdlimit`); these two
ports serve aiohttp's handlers and would otherwise take connections without bound, so idle ones
held open by a local process (or, on the metrics port, anything that reaches the pod) could use
up every file handle and silence the probes, reloads and the app's egress with them.

A port at its cap makes room the way nginx does when it runs out of connections: it closes its
oldest connection that is not in the middle of a request (a kept-alive one, or one that never
finished sending a request head: a slow-loris), and counts it as ``evicted``. Only when every
connection is busy with a request is the new one closed at once, counted as ``limit`` and logged
once per episode. So a probe or a scrape gets through a flood of idle connections.

Not here: the routes and the ``Host`` guard (:mod:`sidecar.admin`, :mod:`sidecar.metrics_port`).
"""

from __future__ import annotations

__all__ = ["CONTROL_MAX_CONNECTIONS", "listen_capped"]

import asyncio
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .fdlimit import ConnectionCap

#: Connections each control port keeps open at once: probes, scrapes and an operator's curl need
#: a handful; the two ports together stay well inside the handles kept out of the data
#: listeners' caps (:data:`sidecar.fdlimit.RESERVE`).
CONTROL_MAX_CONNECTIONS = 64


class _Refused(asyncio.Protocol):
    """A connection past the cap: its handle goes back at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]  # uvloop's is not a subclass


def _idle(handler: RequestHandler) -> bool:
    # aiohttp sets the first while a request is being handled (its head was read): a kept-alive
    # connection, or one still trickling its head, is not in a request; the second once it was
    # told to close (it leaves ``connections`` when its transport is gone, a turn later)
    busy = getattr(handler, "_request_in_progress", False)
    return not busy and not getattr(handler, "_force_close", False)


async def listen_capped(
    runner: web.AppRunner,
    host: str,
    port: int,
    *,
    name: str,
    count: Callable[[str], None],
    limit: int = CONTROL_MAX_CONNECTIONS,
) -> asyncio.AbstractServer:
    """Listen on ``host:port`` for ``runner`` (set up already), at most ``limit`` connections.

    ``count(reason)`` is called for each connection closed to make room (``evicted``) or
    refused (``limit``). The caller closes the returned server before ``runner.cleanup()``.
    """
    server = runner.server
    assert server is not None, "runner.setup() first"
    cap = ConnectionCap(name, limit, lambda: count("limit"))

    def factory() -> asyncio.BaseProtocol:
        live = server.connections  # oldest first: aiohttp keeps them in a dict
        if len(live) < limit:
            cap.closed(len(live))  # room again: a later refusal is a new episode
        else:
            oldest_idle = next((h for h in live if _idle(h)), None)
            if oldest_idle is not None:
                count("evicted")
                oldest_idle.force_close()
            elif not cap.admit(len(live)):
                return _Refused()
        return server()

    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host, port, reuse_address=True, backlog=128)
