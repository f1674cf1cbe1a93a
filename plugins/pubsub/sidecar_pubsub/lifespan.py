"""The ``pubsub_subscriptions`` lifespan: runs every configured subscription while the sidecar
runs.

Each pubsub upstream with ``subscriptions`` gets its own backend (its own connections, apart
from the publishing ones a reload may replace) and one task per subscription; on shutdown the
tasks are cancelled (a message being delivered stays unacknowledged, so the broker gives it out
again) and the connections closed. Subscriptions are read at start-up: a reload that changes
them takes effect at the next start. Not here: the loop itself (:mod:`.subscriber`).
"""

from __future__ import annotations

__all__ = ["run_subscriptions"]

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp

from sidecar import RuntimeView

from .adapter import PubSubAdapter
from .config import PluginSettings, PubSubOptions
from .subscriber import Subscription

#: connections to the app at most, over every subscription
APP_CONNECTIONS = 256
#: bound on joining the consumer groups at start-up; a broker that is down then does not hold
#: the start up: the subscriptions keep trying in the background
JOIN_WAIT = 10.0
log = logging.getLogger("sidecar.plugin.pubsub")


@asynccontextmanager
async def run_subscriptions(runtime: RuntimeView) -> AsyncIterator[None]:
    adapter = runtime.adapter("pubsub")
    settings = runtime.plugin_config("pubsub", PluginSettings)
    wanted = [
        (name, up.url, PubSubOptions.model_validate(up.options))
        for name, up in runtime.config.upstreams.items()
        if up.adapter == "pubsub" and up.options.get("subscriptions")
    ]
    if not isinstance(adapter, PubSubAdapter):
        yield
        return
    # the tracing lifespan publishes the tracer later: the adapter looks it up when it is asked
    adapter.tracer.attach(runtime.resources)
    if not wanted:
        yield
        return
    consumer = settings.consumer or f"{socket.gethostname()}-{os.getpid()}"[:100]
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=APP_CONNECTIONS))
        )
        loops: list[Subscription] = []
        for name, url, options in wanted:
            backend = adapter.build_backend(url, options)
            system = adapter.backend_kind(url, options)
            stack.push_async_callback(backend.aclose)
            loops.extend(
                Subscription(
                    name,
                    sub,
                    backend,
                    settings.app,
                    consumer,
                    session,
                    adapter.metrics,
                    adapter.tracer,
                    system,
                )
                for sub in options.subscriptions
            )
        joined = await asyncio.gather(
            *(asyncio.wait_for(loop.join(), JOIN_WAIT) for loop in loops), return_exceptions=True
        )
        for loop, outcome in zip(loops, joined, strict=True):
            if isinstance(outcome, BaseException):
                log.warning(
                    f"pubsub: could not join {loop.config.group} on {loop.config.topic} at "
                    f"start-up ({type(outcome).__name__}); trying in the background",
                    extra={"fields": {"upstream": loop.upstream}},
                )
        tasks = [
            asyncio.create_task(loop.run(), name=f"pubsub {loop.upstream} {loop.config.topic}")
            for loop in loops
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
