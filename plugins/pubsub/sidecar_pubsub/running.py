"""The running subscriptions, kept in step with the config: started at start-up, changed by
each reload.

Each subscription of each pubsub upstream runs as one task (:class:`.subscriber.Subscription`),
known by its upstream, topic and group. :meth:`RunningSubscriptions.apply` compares what runs
with what the config says now. A subscription that is gone, or changed (its own keys, the
upstream's ``url`` or ``options.backend``, ``plugins.pubsub``), is stopped: it reads no more,
what it has in flight settles and is acknowledged on its own consumer (bounded by its
``timeout``), then the consumer closes. Only then do the new and changed ones join their groups
and start: an MQTT session or a Kafka member of the same name must be gone before its successor
connects. A subscription the reload left alone keeps running untouched. The subscriptions of one
upstream share one backend (connections of their own, apart from the publishing ones); a backend
no running subscription uses any more is closed. Shutdown (:meth:`RunningSubscriptions.aclose`)
cancels instead of draining: what is in flight stays with the broker, which gives it out again.
Not here: the loop itself (:mod:`.subscriber`), the lifespan (:mod:`.lifespan`).
"""

from __future__ import annotations

__all__ = ["RunningSubscriptions"]

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sidecar import RuntimeView, deferred

from .adapter import PubSubAdapter
from .backend import Backend
from .config import BackendChoice, PluginSettings, PubSubOptions, SubscriptionConfig
from .subscriber import Subscription

if TYPE_CHECKING:
    import aiohttp
else:  # imported when first used: not by a sidecar that has no such upstream
    aiohttp = deferred("aiohttp")

#: connections to the app at most, over every subscription
APP_CONNECTIONS = 256
#: bound on joining the consumer groups when subscriptions start; a broker that is down then
#: does not hold the start up: the subscriptions keep trying in the background
JOIN_WAIT = 10.0
log = logging.getLogger("sidecar.plugin.pubsub")


@dataclass(frozen=True)
class _Wanted:
    """One subscription as the config says it now; two are equal when nothing that matters to
    a running subscription differs."""

    upstream: str
    url: str
    backend: BackendChoice
    config: SubscriptionConfig
    app: str
    consumer: str
    options: PubSubOptions = field(compare=False)


@dataclass
class _Running:
    wanted: _Wanted
    subscription: Subscription
    task: asyncio.Task[None]


@dataclass
class _SharedBackend:
    upstream: str
    url: str
    choice: BackendChoice
    backend: Backend


class RunningSubscriptions:
    """Every subscription the config asks for, running; :meth:`apply` after each reload."""

    def __init__(self, runtime: RuntimeView, adapter: PubSubAdapter, default_consumer: str) -> None:
        self.runtime = runtime
        self.adapter = adapter
        self.default_consumer = default_consumer
        self._running: dict[tuple[str, str, str], _Running] = {}
        self._backends: list[_SharedBackend] = []
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    def wanted(self) -> dict[tuple[str, str, str], _Wanted]:
        """What the config in effect asks for, by upstream, topic and group."""
        settings = self.runtime.plugin_config("pubsub", PluginSettings)
        consumer = settings.consumer or self.default_consumer
        out: dict[tuple[str, str, str], _Wanted] = {}
        for name, up in self.runtime.config.upstreams.items():
            if up.adapter != "pubsub" or not up.options.get("subscriptions"):
                continue
            options = PubSubOptions.model_validate(up.options)
            for sub in options.subscriptions:
                key = (name, sub.topic, sub.group)
                out[key] = _Wanted(
                    name, up.url or "", options.backend, sub, settings.app, consumer, options
                )
        return out

    async def apply(self) -> None:
        """Stop what is gone or changed, then start what is new or changed."""
        async with self._lock:
            wanted = self.wanted()
            stale = [k for k, run in self._running.items() if wanted.get(k) != run.wanted]
            await asyncio.gather(*(self._stop(self._running.pop(k)) for k in stale))
            await self._close_unused_backends()
            await self._start([w for k, w in wanted.items() if k not in self._running])

    async def _start(self, wanted: list[_Wanted]) -> None:
        if not wanted:
            return
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=APP_CONNECTIONS)
            self._session = aiohttp.ClientSession(connector=connector)
        subscriptions = [
            Subscription(
                w.upstream,
                w.config,
                self._backend_for(w),
                w.app,
                w.consumer,
                self._session,
                self.adapter.metrics,
                self.adapter.tracer,
                self.adapter.backend_kind(w.url, w.options),
            )
            for w in wanted
        ]
        joined = await asyncio.gather(
            *(asyncio.wait_for(s.join(), JOIN_WAIT) for s in subscriptions),
            return_exceptions=True,
        )
        for w, sub, outcome in zip(wanted, subscriptions, joined, strict=True):
            if isinstance(outcome, BaseException):
                log.warning(
                    f"pubsub: could not join {w.config.group} on {w.config.topic} now "
                    f"({type(outcome).__name__}); trying in the background",
                    extra={"fields": {"upstream": w.upstream}},
                )
            name = f"pubsub {w.upstream} {w.config.topic} {w.config.group}"
            task = asyncio.create_task(sub.run(), name=name)
            self._running[(w.upstream, w.config.topic, w.config.group)] = _Running(w, sub, task)

    def _backend_for(self, wanted: _Wanted) -> Backend:
        for shared in self._backends:
            if (shared.upstream, shared.url, shared.choice) == (
                wanted.upstream,
                wanted.url,
                wanted.backend,
            ):
                return shared.backend
        backend = self.adapter.build_backend(wanted.url, wanted.options)
        self._backends.append(_SharedBackend(wanted.upstream, wanted.url, wanted.backend, backend))
        return backend

    async def _stop(self, run: _Running) -> None:
        """Stop one subscription gracefully; cancel it if it overruns its drain bound."""
        run.subscription.stop()
        try:
            await asyncio.wait([run.task], timeout=run.subscription.drain_bound)
        finally:
            # overran, or the sidecar is shutting down meanwhile: no task outlives its owner
            if not run.task.done():
                run.task.cancel()
                await asyncio.gather(run.task, return_exceptions=True)

    async def _close_unused_backends(self) -> None:
        used = {id(run.subscription.backend) for run in self._running.values()}
        unused = [b for b in self._backends if id(b.backend) not in used]
        self._backends = [b for b in self._backends if id(b.backend) in used]
        for shared in unused:
            await shared.backend.aclose()

    async def aclose(self) -> None:
        """Shutdown: cancel every subscription (in flight stays with the broker), close all."""
        async with self._lock:
            runs, self._running = list(self._running.values()), {}
            for run in runs:
                run.task.cancel()
            await asyncio.gather(*(run.task for run in runs), return_exceptions=True)
            await self._close_unused_backends()
            if self._session is not None:
                await self._session.close()
