"""The ``pubsub`` adapter: ``POST /<upstream>/<topic>`` publishes the app's event to the broker.

The answer is ``204`` (with the event's ``ce-id``) only after the broker confirmed it; ``503
publish_failed`` when it refused, could not be reached, or did not confirm within
``publish_timeout`` (or the call's deadline). The request is a CloudEvent in binary or
structured mode, or a plain body (:mod:`.envelope`). One backend per upstream, kept across
reloads while the upstream's url and options stay equal. With tracing on, each publish is a
PRODUCER span (:mod:`.spans`) whose context the event carries. Not here: deliveries to the app
(:mod:`.subscriber`).
"""

from __future__ import annotations

__all__ = ["PubSubAdapter", "Upstream"]

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from sidecar import (
    Adapter,
    AdapterServices,
    AuthConfigProblem,
    Exchange,
    Handler,
    Headers,
    Response,
    UpstreamConfig,
    read_body,
)

from .backend import Backend, BrokerUnavailable
from .backends_host import BackendRegistry, load_backends
from .config import PubSubOptions
from .envelope import CloudEvent, EnvelopeError, complete, from_http
from .errors import InvalidEvent, MethodNotAllowed, PublishFailed, UnknownTopic
from .metrics import PubSubMetrics
from .tracing import LiveTracer


class UnusableSetting(ValueError):
    """A setting the upstream cannot be built with; ``key`` is its path under the upstream
    (reported as ``upstreams.<u>.<key>: <reason>``)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


@dataclass
class Upstream:
    """One pubsub upstream as the adapter keeps it: its options and its backend."""

    name: str
    url: str
    options: PubSubOptions
    backend: Backend
    #: the backend's registered name (``redis``, ``kafka``...): the spans' ``messaging.system``
    system: str


class PubSubAdapter(Adapter):
    options_model = PubSubOptions

    def __init__(self, services: AdapterServices) -> None:
        super().__init__(services)
        self._backends: BackendRegistry | None = None
        self.metrics = PubSubMetrics.of(services.metrics.registry)
        self.live: dict[str, Upstream] = {}
        self._retired: list[Backend] = []
        #: the sidecar's tracer, once the subscriptions' lifespan attached its resources
        self.tracer = LiveTracer()
        #: called after each applied reload (the subscriptions follow the new config)
        self.reload_listeners: list[Callable[[], None]] = []

    @property
    def backends(self) -> BackendRegistry:
        """Every backend, loaded when a pubsub upstream is first built: a sidecar whose config
        has none never imports the broker clients (redis-py, aio-pika, aiomqtt, aiokafka: tens
        of megabytes and a good part of a second at start)."""
        if self._backends is None:
            self._backends = load_backends()
        return self._backends

    def backend_kind(self, url: str | None, options: PubSubOptions) -> str:
        """The registered name of the backend an upstream's url and options pick."""
        if url is None:
            raise UnusableSetting("url", "required: the broker's url (redis://..., amqp://...)")
        kind = options.backend.type
        known = ", ".join(r.name for r in self.backends.registrations())
        if kind is None:
            scheme = urlsplit(url).scheme.lower()
            kind = self.backends.for_scheme(scheme)
            if kind is None:
                raise UnusableSetting(
                    "url", f"no pubsub backend takes {scheme}:// urls (backends: {known})"
                )
        elif kind not in self.backends:
            raise UnusableSetting(
                "options.backend.type", f"unknown pubsub backend {kind!r} (backends: {known})"
            )
        return kind

    def build_backend(self, url: str | None, options: PubSubOptions) -> Backend:
        """A new backend for an upstream's url and options (no connection is made yet)."""
        cls = self.backends[self.backend_kind(url, options)]
        try:
            own = cls.options_model.model_validate(options.backend.own_keys())
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise UnusableSetting(f"options.backend.{where}", err["msg"]) from None
        try:
            return cls(url or "", own)
        except AuthConfigProblem as e:
            raise UnusableSetting("options.backend.password", str(e)) from None

    def upstream(self, name: str, upstream: UpstreamConfig) -> Upstream:
        """The upstream's state: kept while its url and options stay equal, else built anew."""
        options = PubSubOptions.model_validate(upstream.options)
        have = self.live.get(name)
        if have is not None and have.url == upstream.url and have.options == options:
            return have
        backend = self.build_backend(upstream.url, options)
        system = self.backend_kind(upstream.url, options)
        up = Upstream(name, upstream.url or "", options, backend, system)
        if have is not None:
            self._retired.append(have.backend)
        self.live[name] = up
        return up

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        up = self.upstream(name, upstream)
        options = up.options
        backend = up.backend
        topics = frozenset(options.topics)
        published = {t: self.metrics.published.labels(name, t, "ok") for t in topics}
        counter = self.metrics.published
        attempts = self.services.metrics.attempts(name)
        max_bytes = options.max_message_bytes
        live_tracer = self.tracer
        system = up.system

        async def publish(exchange: Exchange) -> Response:
            if exchange.method != "POST":
                raise MethodNotAllowed("publish with POST /<upstream>/<topic>")
            topic = exchange.path[1:]
            if topic not in topics:
                raise UnknownTopic("the topic is not in this upstream's topics")
            body = await read_body(exchange, max_bytes)
            try:
                event = complete(
                    from_http(exchange.headers, body), source=options.source, type_=options.type
                )
            except EnvelopeError as e:
                counter.labels(name, topic, "invalid").inc()
                raise InvalidEvent(str(e)) from None
            call_context = exchange.headers.get("traceparent")
            tracer = live_tracer.get()
            if tracer is None:
                if call_context is not None:
                    event.attributes.setdefault("traceparent", call_context)
                return await confirmed(exchange, topic, event)
            from . import spans  # OpenTelemetry: only in a sidecar that traces

            span = spans.publish_span(tracer, system, topic, call_context)
            span.set_attribute("messaging.message.id", event.id)
            # the consumer's span goes under this one, unless the app named its own parent
            carried = spans.traceparent_of(span) or call_context
            if carried is not None:
                event.attributes.setdefault("traceparent", carried)
            try:
                answer = await confirmed(exchange, topic, event)
            except PublishFailed as e:
                spans.end(span, "publish_failed", str(e))
                raise
            except BaseException as e:  # cancelled: the app went away before the broker answered
                spans.end(span, type(e).__name__)
                raise
            spans.end(span)
            return answer

        async def confirmed(exchange: Exchange, topic: str, event: CloudEvent) -> Response:
            """Publish ``event`` and answer 204 once the broker confirmed it, else raise."""
            wait = options.publish_timeout
            if exchange.deadline is not None:
                now = asyncio.get_running_loop().time()
                wait = min(wait, max(0.0, exchange.deadline - now))
            try:
                async with asyncio.timeout(wait):
                    await backend.publish(topic, event)
            except TimeoutError as e:
                attempts.failed(e)
                counter.labels(name, topic, "timeout").inc()
                raise PublishFailed(f"the broker did not confirm within {wait:.3g}s") from None
            except BrokerUnavailable as e:
                attempts.failed(e)
                counter.labels(name, topic, "unavailable").inc()
                raise PublishFailed(str(e)) from None
            attempts.response()
            published[topic].inc()
            return Response(204, Headers([("ce-id", event.id)]), b"")

        return publish

    def describe(self, name: str) -> dict[str, Any]:
        up = self.live.get(name)
        if up is None:
            return {}
        return {
            **up.backend.describe(),
            "topics": list(up.options.topics),
            "subscriptions": [f"{s.topic}/{s.group}" for s in up.options.subscriptions],
        }

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        for name in [n for n in self.live if n not in live]:
            self._retired.append(self.live.pop(name).backend)
        retired, self._retired = self._retired, []
        for backend in retired:
            await backend.aclose()
        for listener in list(self.reload_listeners):
            listener()  # retire is called once per applied reload, with the new config in effect

    async def aclose(self) -> None:
        for up in self.live.values():
            await up.backend.aclose()
        for backend in self._retired:
            await backend.aclose()
        self.live.clear()
        self._retired.clear()
