"""Where a test reaches the sidecar's own gRPC services (health, admin API, reflection): the
sidecar's gRPC port, where the listener serves them ahead of the proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sidecar.app import Sidecar


@asynccontextmanager
async def own_services(s: Sidecar) -> AsyncIterator[str]:
    """The ``host:port`` target serving ``s``'s own gRPC services: its gRPC port."""
    assert s.grpc is not None, "the sidecar has no gRPC port (grpc.enabled is false?)"
    yield f"127.0.0.1:{s.grpc.port}"
