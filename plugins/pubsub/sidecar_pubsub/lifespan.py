"""The ``pubsub_subscriptions`` lifespan: runs every configured subscription while the sidecar
runs, and follows reloads.

At start-up every subscription joins its consumer group before the sidecar reports ready (each
join bounded; one that fails goes on trying in the background). After each applied reload the
adapter says so, and :class:`.running.RunningSubscriptions` stops what the reload changed or
removed (letting its deliveries in flight settle) and starts what it changed or added. On
shutdown the subscriptions are cancelled (a message being delivered stays unacknowledged, so the
broker gives it out again) and their connections closed. The lifespan also hands the adapter the
sidecar's resources, where the tracer is found (:mod:`.tracing`). Not here: which subscriptions
run (:mod:`.running`), the loop (:mod:`.subscriber`).
"""

from __future__ import annotations

__all__ = ["run_subscriptions"]

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sidecar import RuntimeView

from .adapter import PubSubAdapter
from .running import RunningSubscriptions

log = logging.getLogger("sidecar.plugin.pubsub")


@asynccontextmanager
async def run_subscriptions(runtime: RuntimeView) -> AsyncIterator[None]:
    adapter = runtime.adapter("pubsub")
    if not isinstance(adapter, PubSubAdapter):
        yield
        return
    # the tracing lifespan publishes the tracer later: the adapter looks it up when it is asked
    adapter.tracer.attach(runtime.resources)
    running = RunningSubscriptions(runtime, adapter, f"{socket.gethostname()}-{os.getpid()}"[:100])
    reloaded = asyncio.Event()
    adapter.reload_listeners.append(reloaded.set)

    async def follow_reloads() -> None:
        while True:
            await reloaded.wait()
            reloaded.clear()
            try:
                await running.apply()
            except Exception as e:  # a bug must not stop the subscriptions that still run
                log.error("pubsub: applying a reload to the subscriptions failed", exc_info=e)

    try:
        await running.apply()
        follower = asyncio.create_task(follow_reloads(), name="pubsub reloads")
        try:
            yield
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    finally:
        adapter.reload_listeners.remove(reloaded.set)
        await running.aclose()
