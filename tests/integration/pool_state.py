"""The ``up`` upstream pool of a running sidecar process, as its admin port reports it."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

from sidecar.testing import SidecarProcess

#: bound on the wait for the pool to settle, and on each admin request (seconds)
WAIT = 10.0


def _admin_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=WAIT) as r:  # noqa: S310 - loopback admin port
        return json.loads(r.read())


async def settled_pool(proc: SidecarProcess) -> dict[str, Any]:
    """The ``up`` pool once no connection is busy (polled, bounded by :data:`WAIT`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        pool: dict[str, Any] = (
            await asyncio.to_thread(_admin_json, f"{proc.admin_url}/upstreams")
        )["up"]
        if pool["connections"]["busy"] == 0:
            return pool
        assert loop.time() < deadline, pool
        await asyncio.sleep(0.02)
