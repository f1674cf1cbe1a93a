"""The sidecar's chain of one route, composed as the sidecar composes it, around a fake upstream.

:func:`route` asks every filter registered on a plugin host (the built-ins, and a credential
type of the tests', :class:`RotatingToken`, registered through the public hook) for its filter,
in the registry's order, with the resources the sidecar's lifespans would publish (credential
broker, rate-limit backends, tracing). :class:`Upstream` stands in for the adapter. No sockets.
"""

from __future__ import annotations

__all__ = [
    "Route",
    "RotatingToken",
    "Upstream",
    "complete",
    "counted",
    "decided",
    "eventually",
    "route",
    "spans",
]

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ConfigDict

from sidecar.api import (
    CredentialProvider,
    CredentialRegistry,
    ProviderContext,
    RouteContext,
    SharedKey,
    hookimpl,
)
from sidecar.api.shared import SharedState, SharedStateBuilder
from sidecar.auth.broker import RESOURCE as CREDENTIALS
from sidecar.auth.broker import CredentialBroker
from sidecar.chain import Filter, Handler, compose
from sidecar.exchange import Exchange, Headers, Response
from sidecar.plugins import make_plugin_host
from sidecar.ratelimit.guard import GuardedBackend
from sidecar.ratelimit.live import RESOURCE as RATELIMIT_BACKENDS
from sidecar.ratelimit.live import LiveBackends
from sidecar.telemetry.metrics import Metrics
from sidecar.telemetry.tracing import RESOURCE as TRACING
from sidecar.telemetry.tracing import Tracing
from sidecar.testing import make_route_context

# --- the sidecar's registries, and one credential type of the test's ---------------------------


class RotatingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RotatingToken(CredentialProvider):
    """A bearer token the test renews at will; remembers each one it put on a call, and when."""

    settings_model = RotatingSettings

    def __init__(self, settings: Any, context: ProviderContext) -> None:
        super().__init__(settings, context)
        self.current = 1
        self.taken: list[str] = []
        self.taken_ns: list[int] = []

    @classmethod
    def header_of(cls, settings: Any) -> str | None:
        return "authorization"

    async def apply(self, exchange: Exchange) -> object | None:
        token = f"Bearer t{self.current}"
        exchange.headers.set("authorization", token)
        self.taken.append(token)
        self.taken_ns.append(time.time_ns())
        return token


class RotatingPlugin:
    """Registers ``rotating`` through the public hook, as a third-party plugin would."""

    @hookimpl
    def sidecar_register_credentials(self, registry: CredentialRegistry) -> None:
        registry.add("rotating", RotatingToken)


HOST = make_plugin_host(load_entry_points=False, extra_plugins=[("rotating", RotatingPlugin())])
CREDENTIAL_TYPES = {r.name: r.item for r in HOST.registries.credentials.registrations()}


@dataclass
class Route:
    """One route's chain, built from the registered filters, and what it was built with."""

    handler: Handler
    ctx: RouteContext
    names: list[str]
    live_backends: LiveBackends
    state: SharedStateBuilder

    async def call(self, exchange: Exchange) -> Response:
        """One call through the chain, as a coroutine (for ``create_task``)."""
        return await self.handler(exchange)

    def shared(self, key: SharedKey[Any]) -> Any:
        return self.state.build().get(key, self.ctx.upstream_name)

    def backend(self, name: str) -> GuardedBackend:
        return self.live_backends.get(name, self.ctx.config.ratelimit_backends[name])


def route(
    upstream: dict[str, Any],
    terminal: Handler,
    *,
    config: dict[str, Any] | None = None,
    front: str = "http",
    name: str = "test",
    tracing: Tracing | None = None,
    metrics: Metrics | None = None,
) -> Route:
    """Compose ``upstream``'s chain as the sidecar does: every registered filter, in order."""
    metrics = metrics if metrics is not None else Metrics()
    ctx = make_route_context(upstream, config=config, metrics=metrics, front=front, route=name)
    live = LiveBackends(HOST.registries.ratelimit_backends, metrics)
    resources: dict[str, Any] = {
        CREDENTIALS: CredentialBroker(CREDENTIAL_TYPES, metrics),
        RATELIMIT_BACKENDS: live,
    }
    if tracing is not None:
        resources[TRACING] = tracing
    state = SharedStateBuilder(SharedState())
    ctx = dataclasses.replace(ctx, resources=resources, shared_state=state)
    names, filters = route_filters(ctx)
    return Route(compose(filters, terminal), ctx, names, live, state)


def route_filters(ctx: RouteContext) -> tuple[list[str], list[Filter]]:
    """The names and filters every registered factory builds for ``ctx``, outermost first."""
    names: list[str] = []
    filters: list[Filter] = []
    for reg in HOST.registries.filters.ordered():
        f = reg.item(ctx)
        if f is not None:
            names.append(reg.name)
            filters.append(f)
    return names, filters


# --- what each test records -------------------------------------------------------------------


@dataclass
class Upstream:
    """A fake upstream: answers ``statuses`` in turn (the last one repeats), after ``latency``
    seconds (a slow upstream, not a synchronisation), and keeps the headers each attempt
    carried. ``on_attempt(n)`` runs as attempt ``n`` arrives (awaited when it returns an
    awaitable)."""

    statuses: list[int] = field(default_factory=lambda: [200])
    latency: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    sent: list[Headers] = field(default_factory=list)
    on_attempt: Callable[[int], Awaitable[None] | None] | None = None

    async def __call__(self, exchange: Exchange) -> Response:
        self.sent.append(exchange.headers.copy())
        attempt = len(self.sent)
        if self.on_attempt is not None:
            waiting = self.on_attempt(attempt)
            if waiting is not None:
                await waiting
        if self.latency:
            await asyncio.sleep(self.latency)
        status = self.statuses[min(attempt, len(self.statuses)) - 1]
        return Response(status, Headers(self.headers.items()), b"answer")


def complete(resp: Response) -> None:
    """What the listener does once the answer's body was written."""
    for done in resp.on_complete or ():
        done(True, len(resp.body) if isinstance(resp.body, bytes) else 0)


def decided(resp: Response) -> str | None:
    """The sidecar decision that made ``resp`` (``x-sidecar-error``), ``None`` for an answer."""
    return resp.headers.get("x-sidecar-error")


def counted(r: Route, family: str, **labels: str) -> float:
    value = r.ctx.metrics.registry.get_sample_value(family, labels)
    return value or 0.0


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Let the loop run until ``condition`` holds (bounded: fails after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def spans(live: Tracing, kind: SpanKind) -> list[ReadableSpan]:
    assert live.processor.force_flush(5_000)
    exporter: InMemorySpanExporter = live.processor.exporter  # type: ignore[assignment]
    return [s for s in exporter.get_finished_spans() if s.kind is kind]
