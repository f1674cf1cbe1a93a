"""The ``webhooks`` adapter: the app's ``POST /<upstream>/<event-type>`` becomes queued deliveries.

It answers ``202 {"id": "msg_...", "endpoints": [...], "repeat": false}`` once every delivery of
the event is durably queued (an event type no endpoint subscribes to is accepted with no
endpoints), ``503`` when the queue is full or could not be written (a disk error, Redis down),
``413`` past ``max_body``. An app that sends
its own ``webhook-id`` can post again safely: while that event is held it is not queued twice
(``"repeat": true``), and a later repeat is delivered with the same id, so receivers drop it.
Secrets are read here (start-up, ``sidecar check`` and each reload), so an unusable one is
reported at its key path. The engines that deliver are started by the plugin's lifespan.
"""

from __future__ import annotations

import json
import os
import re
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from sidecar import (
    Adapter,
    AdapterServices,
    AuthConfigProblem,
    Exchange,
    Handler,
    Headers,
    Response,
    SecretRef,
    SecretValue,
    SidecarError,
    UpstreamConfig,
    read_body,
)

from .config import EVENT_TYPE_PATTERN, WebhooksOptions, secret_problem, url_problem
from .delivery import Engine, Stopping
from .metrics import WebhookMetrics
from .queue import QueueDown, QueueFull
from .worker import log

_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)
#: an id the app gives its event (``webhook-id``): it names files, so it is kept plain
_MSG_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class UnusableSetting(ValueError):
    """A setting the adapter cannot use; ``key`` is its path under the upstream."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


class NotAnEvent(SidecarError):
    status, grpc_code, code = 404, 5, "webhook_not_an_event"  # 5: NOT_FOUND


class BadMessageId(SidecarError):
    status, grpc_code, code = 400, 3, "webhook_bad_id"  # 3: INVALID_ARGUMENT


class OnlyPost(SidecarError):
    status, grpc_code, code = 405, 12, "webhook_method"  # 12: UNIMPLEMENTED


class QueueUnavailable(SidecarError):
    status, grpc_code, code = 503, 14, "webhook_queue_unavailable"  # 14: UNAVAILABLE


def store_dir_problem(path: Path) -> str | None:
    """Why the queue cannot live in ``path`` (checked at start-up and by ``sidecar check``)."""
    if path.exists() and not path.is_dir():
        return f"{path} exists and is not a directory"
    existing = path
    while not existing.exists():  # the queue creates what is missing: its parent must allow it
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable by this process"
    return None


class Settings(NamedTuple):
    """An upstream's options with its endpoints' secrets (and referenced URLs) read."""

    options: WebhooksOptions
    secrets: dict[str, list[SecretValue]]
    #: the endpoints whose URL is given by reference
    urls: dict[str, SecretValue]
    #: the Redis queue's password, when it has one
    redis_password: SecretValue | None = None


def settings_of(upstream: UpstreamConfig) -> Settings:
    """The upstream's options, its endpoints' secrets and referenced URLs, read now; raises
    UnusableSetting naming the key path of one that cannot be used (never its value)."""
    options = WebhooksOptions.model_validate(upstream.options)
    if options.store_dir is not None:
        problem = store_dir_problem(Path(options.store_dir))
        if problem is not None:
            raise UnusableSetting("options.store_dir", problem)
    redis_password = None
    if options.redis is not None and options.redis.password is not None:
        try:
            redis_password = SecretValue(options.redis.password, "options.redis.password")
        except AuthConfigProblem as e:
            raise UnusableSetting("options.redis.password", str(e)) from None
    secrets: dict[str, list[SecretValue]] = {}
    urls: dict[str, SecretValue] = {}
    for endpoint, settings in options.endpoints.items():
        refs = [(f"secrets.{i}", ref, secret_problem) for i, ref in enumerate(settings.secrets)]
        if isinstance(settings.url, SecretRef):
            refs.append(("url", settings.url, url_problem))
        secrets[endpoint] = []
        for where, ref, check in refs:
            key_path = f"options.endpoints.{endpoint}.{where}"
            try:
                value = SecretValue(ref, key_path, check=check)
            except AuthConfigProblem as e:
                raise UnusableSetting(key_path, str(e)) from None
            if where == "url":
                urls[endpoint] = value
            else:
                secrets[endpoint].append(value)
    return Settings(options, secrets, urls, redis_password)


class WebhooksAdapter(Adapter):
    options_model = WebhooksOptions

    def __init__(self, services: AdapterServices) -> None:
        super().__init__(services)
        self.metrics = WebhookMetrics.of(services.metrics.registry)
        #: upstream → its running engine (filled by the lifespan)
        self.engines: dict[str, Engine] = {}
        #: this sidecar's name in a Redis queue's consumer group: the same across reloads (a
        #: new engine reads back what the one it replaced held), new at each start
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        options = settings_of(upstream).options  # unusable settings stop start-up or reload
        attempts = self.services.metrics.attempts(name)
        max_body = options.max_body
        engines = self.engines

        async def accept(exchange: Exchange) -> Response:
            attempts.response()
            if exchange.method != "POST":
                raise OnlyPost("send events with POST /<upstream>/<event-type>")
            event_type = exchange.path.strip("/")
            if not _EVENT_TYPE.fullmatch(event_type):
                raise NotAnEvent("the path is no event type (letters, digits, . _ : -)")
            engine = engines.get(name)
            if engine is None:
                raise QueueUnavailable("the webhooks queue is not running")
            body = await read_body(exchange, max_body)
            content_type = exchange.headers.get("content-type") or "application/json"
            given = exchange.headers.get("webhook-id")
            if given is not None and not _MSG_ID.fullmatch(given):
                raise BadMessageId("webhook-id is 1 to 64 letters, digits, _ or -")
            try:
                msg_id, endpoints, repeat = await engine.accept(
                    event_type, body, content_type, given
                )
            except QueueFull:
                raise QueueUnavailable("too many webhook deliveries pending") from None
            except Stopping:
                raise QueueUnavailable("the webhooks queue is restarting") from None
            except QueueDown:
                raise QueueUnavailable("the webhooks queue could not be written") from None
            answer = json.dumps({"id": msg_id, "endpoints": endpoints, "repeat": repeat}).encode()
            return Response(202, Headers([("content-type", "application/json")]), answer)

        return accept

    async def start(self, upstreams: Mapping[str, UpstreamConfig]) -> None:
        """Start an engine for each upstream using this adapter (the plugin's lifespan, which
        runs before the routes are composed: the upstreams come from the config)."""
        for name, upstream in upstreams.items():
            if upstream.adapter != "webhooks":
                continue
            try:
                settings = settings_of(upstream)
            except UnusableSetting:
                continue  # handler() reports it at its key path when the routes are composed
            engine = Engine(name, settings, self.metrics, self.consumer)
            await engine.start()
            self.engines[name] = engine

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        """After a reload applied: restart the engine of each webhooks upstream whose options
        changed, start the new ones, stop the removed ones. Pending deliveries stay on disk
        through the swap (an attempt in flight is sent again); calls arriving during it get
        503, which the app retries."""
        for name in list(self.engines):
            upstream = live.get(name)
            if upstream is None or upstream.adapter != "webhooks":
                await self.engines.pop(name).stop()
        for name, upstream in live.items():
            if upstream.adapter != "webhooks":
                continue
            try:
                settings = settings_of(upstream)
            except UnusableSetting:
                continue  # the reload was refused for it; the running engine stays
            running = self.engines.get(name)
            if running is not None and running.options == settings.options:
                continue
            if running is not None:
                del self.engines[name]  # no call may queue into an engine being stopped
                await running.stop()
            engine = Engine(name, settings, self.metrics, self.consumer)
            await engine.start()
            self.engines[name] = engine
            log.info("webhooks options applied", extra={"fields": {"upstream": name}})

    async def stop(self) -> None:
        engines = list(self.engines.values())
        self.engines.clear()  # the same dict the handlers hold
        for engine in engines:
            await engine.stop()

    def describe(self, name: str) -> dict[str, Any]:
        engine = self.engines.get(name)
        return {"store": engine.queue.where} if engine is not None else {"running": False}
