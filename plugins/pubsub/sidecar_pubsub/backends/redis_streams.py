"""Redis Streams as a pub/sub backend: one stream per topic, consumer groups, claims.

Redis Streams have no CloudEvents binding: each entry holds one field, ``event``, whose value is
the event in structured mode (``application/cloudevents+json``). A publish is confirmed by
``XADD``'s reply; the stream is trimmed to about ``maxlen`` entries so it stays bounded. A
consumer reads with ``XREADGROUP``: first what it was given and never acknowledged before a
restart (same consumer name), then new entries; every ``claim_interval`` it also takes over
(``XAUTOCLAIM``) entries another member of its group left pending longer than ``claim_after``,
which is how a dead consumer's messages are delivered again. Not here: the delivery loop.
"""

from __future__ import annotations

__all__ = ["RedisStreamsBackend"]

import time
from typing import Any

import redis.asyncio as aioredis
from pydantic import Field
from redis.exceptions import RedisError, ResponseError

from sidecar import Duration, Model, SecretRef, SecretValue

from ..backend import Backend, BrokerUnavailable, Consumer, Delivery
from ..envelope import CloudEvent, EnvelopeError, from_structured, to_structured

FIELD = b"event"


class RedisStreamsOptions(Model):
    """``options.backend`` keys of a ``redis`` backend."""

    #: the password, by reference (``{env: NAME}`` or ``{file: PATH}``)
    password: SecretRef | None = None
    #: each stream is trimmed to about this many entries (``XADD MAXLEN ~``)
    maxlen: int = Field(default=1_000_000, ge=1)
    #: prepended to each topic to name its stream
    key_prefix: str = Field(default="", max_length=100)
    connect_timeout: Duration = Field(default=2.0, gt=0, le=60)
    #: connections at most (publishes and consumers together)
    max_connections: int = Field(default=64, ge=2, le=10_000)
    #: how often a consumer looks for entries a dead member left pending
    claim_interval: Duration = Field(default=1.0, gt=0, le=3600)


def _broker_error(e: BaseException) -> BrokerUnavailable:
    # the class name only: a redis message can echo the url, which may hold a password
    return BrokerUnavailable(f"redis: {type(e).__name__}")


class RedisStreamsBackend(Backend):
    options_model = RedisStreamsOptions
    url_schemes = ("redis", "rediss")

    def __init__(self, url: str, options: Any) -> None:
        super().__init__(url, options)
        assert isinstance(options, RedisStreamsOptions)
        self.settings = options
        password = None
        if options.password is not None:
            password = SecretValue(options.password, "options.backend.password").get()
        self.client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_connect_timeout=options.connect_timeout,
            max_connections=options.max_connections,
        )

    def key(self, topic: str) -> str:
        return f"{self.settings.key_prefix}{topic}"

    async def publish(self, topic: str, event: CloudEvent) -> None:
        try:
            await self.client.xadd(
                self.key(topic),
                {FIELD: to_structured(event)},
                maxlen=self.settings.maxlen,
                approximate=True,
            )
        except (RedisError, OSError) as e:
            raise _broker_error(e) from None

    async def consumer(self, topic: str, group: str, name: str, claim_after: float) -> Consumer:
        key = self.key(topic)
        try:
            # from the stream's start: what was published before the group existed is delivered
            await self.client.xgroup_create(key, group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise _broker_error(e) from None
        except (RedisError, OSError) as e:
            raise _broker_error(e) from None
        return _StreamConsumer(self, key, group, name, claim_after)

    def describe(self) -> dict[str, Any]:
        return {"backend": "redis", "maxlen": self.settings.maxlen}

    async def aclose(self) -> None:
        await self.client.aclose()


def _stream_entries(reply: Any) -> list[Any]:
    """The ``(id, fields)`` entries of an ``XREADGROUP`` reply of one stream."""
    if not reply:
        return []
    return list(reply[0][1])


class _Entry(Delivery):
    def __init__(self, consumer: _StreamConsumer, entry_id: bytes, fields: dict[bytes, bytes]):
        self._consumer = consumer
        self._id = entry_id
        self.broker_id = entry_id.decode()
        self.raw = fields.get(FIELD, b"")
        try:
            self.event = from_structured(self.raw)
        except EnvelopeError:
            self.event = None

    async def ack(self) -> None:
        c = self._consumer
        try:
            await c.backend.client.xack(c.key, c.group, self._id)
        except (RedisError, OSError) as e:
            raise _broker_error(e) from None


class _StreamConsumer(Consumer):
    def __init__(
        self, backend: RedisStreamsBackend, key: str, group: str, name: str, claim_after: float
    ) -> None:
        self.backend = backend
        self.key = key
        self.group = group
        self.name = name
        self.claim_after_ms = int(claim_after * 1000)
        #: this consumer's own unacknowledged entries (a restart) are read before new ones,
        #: from this id on (each read goes past the last, so none is handed out twice)
        self._own_pending = True
        self._pending_from = "0"
        self._next_claim = 0.0

    async def receive(self, max_count: int, wait: float) -> list[Delivery]:
        client = self.backend.client
        try:
            if self._own_pending:
                reply: Any = await client.xreadgroup(
                    self.group, self.name, {self.key: self._pending_from}, count=max_count
                )
                pending = _stream_entries(reply)
                if pending:
                    self._pending_from = pending[-1][0]
                    entries = await self._live(pending)
                    if entries:
                        return entries
                else:
                    self._own_pending = False
            now = time.monotonic()
            if now >= self._next_claim:
                self._next_claim = now + self.backend.settings.claim_interval
                reply = await client.xautoclaim(
                    self.key,
                    self.group,
                    self.name,
                    min_idle_time=self.claim_after_ms,
                    start_id="0-0",
                    count=max_count,
                )
                entries = await self._live(list(reply[1]))
                if entries:
                    return entries
            reply = await client.xreadgroup(
                self.group,
                self.name,
                {self.key: ">"},
                count=max_count,
                block=max(1, int(wait * 1000)),
            )
            return await self._live(_stream_entries(reply))
        except (RedisError, OSError) as e:
            raise _broker_error(e) from None

    async def _live(self, entries: list[Any]) -> list[Delivery]:
        """The entries as deliveries; an entry trimmed away while pending (no fields left) is
        acknowledged, since there is nothing to deliver."""
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            await self.backend.client.xack(self.key, self.group, *gone)
        return [_Entry(self, i, f) for i, f in entries if f]

    async def aclose(self) -> None:
        """Nothing to close: the backend's pool holds the connections."""
