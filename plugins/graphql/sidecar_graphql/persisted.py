"""Where automatic persisted queries (Apollo APQ) are kept: in memory or in Redis.

A store maps a document's SHA-256 (lower-case hex) to its text. The memory store is a bounded
LRU per upstream; the Redis store is shared by replicas, each entry living ``ttl`` after its last
use. redis-py is imported when a Redis store is built, never by a sidecar that has none. A Redis
that fails or is slow past ``timeout`` makes a lookup a miss (the app then sends the document,
as APQ expects) and a registration a no-op: persisted queries save bytes, they never fail a
call. A running sidecar keeps its stores in :class:`Stores` and closes them when it stops.
Not here: the protocol (:mod:`.gate`), the allow-list (:mod:`.allow_list`).
"""

from __future__ import annotations

__all__ = [
    "STORES",
    "MemoryStore",
    "QueryStore",
    "RedisStore",
    "Stores",
    "make_store",
    "sha256_hex",
    "stores_lifespan",
]

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sidecar import RuntimeView

from .config import QueryCache

log = logging.getLogger("sidecar.graphql")


def sha256_hex(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()


class QueryStore(Protocol):
    async def get(self, digest: str) -> str | None: ...

    async def put(self, digest: str, query: str) -> None: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """At most ``max_entries`` documents; the least recently used goes first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, digest: str) -> str | None:
        query = self._entries.get(digest)
        if query is not None:
            self._entries.move_to_end(digest)
        return query

    async def put(self, digest: str, query: str) -> None:
        self._entries[digest] = query
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        self._entries.clear()


class RedisStore:
    """Entries under ``key_prefix + digest``, each read renewing its ``ttl``."""

    def __init__(self, cache: QueryCache) -> None:
        import redis.asyncio  # only here: a sidecar without a Redis store never loads redis-py

        assert cache.url is not None  # checked by QueryCache
        self._redis: Any = redis.asyncio.Redis.from_url(
            cache.url, socket_timeout=cache.timeout, socket_connect_timeout=cache.timeout
        )
        self.prefix = cache.key_prefix
        self.ttl = max(1, int(cache.ttl))
        self.timeout = cache.timeout

    async def get(self, digest: str) -> str | None:
        try:
            async with asyncio.timeout(self.timeout):
                raw = await self._redis.getex(self.prefix + digest, ex=self.ttl)
        except Exception as e:  # any failure of the store is a miss (see the module)
            log.warning("graphql: persisted-query store failed: %s", type(e).__name__)
            return None
        return raw.decode() if isinstance(raw, bytes) else raw

    async def put(self, digest: str, query: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self._redis.set(self.prefix + digest, query.encode(), ex=self.ttl)
        except Exception as e:
            log.warning("graphql: persisted-query store failed: %s", type(e).__name__)

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_store(cache: QueryCache) -> QueryStore:
    if cache.type == "redis":
        return RedisStore(cache)
    return MemoryStore(cache.max_entries)


#: where the running sidecar's :class:`Stores` is published (``RouteContext.resources``)
STORES = "graphql.stores"


class Stores:
    """The persisted-query stores of one running sidecar, by upstream and cache settings,
    closed when it stops (the ``graphql_stores`` lifespan publishes it). A store stays while
    its settings do; one a reload left behind is closed at shutdown with the rest."""

    def __init__(self) -> None:
        self._stores: dict[tuple[str, QueryCache], QueryStore] = {}

    def get(self, upstream: str, cache: QueryCache) -> QueryStore:
        have = self._stores.get((upstream, cache))
        if have is None:
            have = self._stores[(upstream, cache)] = make_store(cache)
        return have

    async def aclose(self) -> None:
        stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            await store.aclose()


@asynccontextmanager
async def stores_lifespan(runtime: RuntimeView) -> AsyncIterator[None]:
    """Publish a :class:`Stores` for the filter factories; close every store at shutdown."""
    stores = runtime.resources[STORES] = Stores()
    try:
        yield
    finally:
        runtime.resources.pop(STORES, None)
        await stores.aclose()
