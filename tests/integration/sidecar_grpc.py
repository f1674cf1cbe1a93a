"""Where a test reaches the sidecar's own gRPC services (health, admin API, reflection).

Until the gRPC listener serves them on the sidecar's gRPC port, :func:`own_services` puts them
on a ``grpc.aio`` server of the test's making, exactly as the listener does
(:func:`sidecar.grpc.services.add_services`), and stops it the way the listener's drain does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from sidecar.app import Sidecar
from sidecar.grpc.services import add_services


@asynccontextmanager
async def own_services(s: Sidecar) -> AsyncIterator[str]:
    """The ``host:port`` target serving ``s``'s own gRPC services."""
    server = grpc.aio.server()
    services = add_services(server, s)
    port = server.add_insecure_port("127.0.0.1:0")
    assert port, "the gRPC services could not bind a loopback port"
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        services.drain()
        await server.stop(1.0)
        await services.aclose()
