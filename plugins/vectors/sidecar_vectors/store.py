"""What a backend is (:class:`Store`), and the one HTTP client every backend talks through.

A store answers five things for one of its namespaces: what it is (:class:`Described`:
dimension, metric, the store's handle for it), upsert, query, fetch and delete. The client
(:class:`StoreHttp`) sends JSON with the store's key, reads answers up to a bound, and turns
every failure into the API's own error once, here: the store refused the key (502
``store_auth``), refused the call (502 ``store_error``, with the store's message, the key
scrubbed), is busy (503 ``store_busy``), cannot be reached (the sidecar's ``upstream_connect``)
or is late (``upstream_timeout``). The key is sent, never logged or put in a message.
"""

from __future__ import annotations

__all__ = ["Described", "Store", "StoreHttp", "read_upto", "store_message"]

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sidecar import (
    SecretValue,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
    deferred,
)

from .config import VectorsOptions
from .scores import Metric
from .vector_api import ApiError, Match, QueryCall, Record

if TYPE_CHECKING:
    import aiohttp
else:  # imported when first used: not by a sidecar that has no such upstream
    aiohttp = deferred("aiohttp")

#: bytes of a store's error body read for its message, and the most of it passed on
ERROR_BODY_LIMIT = 64 * 1024
MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class Described:
    """What the store says about one namespace, kept for ``describe_ttl``."""

    #: the store's name for it (Pinecone namespace, Weaviate or Chroma collection)
    name: str
    dimension: int | None
    metric: Metric | None
    #: the store's own name for its metric, when it said one (``dotproduct``, ``hamming``)
    reported: str | None
    #: the store's own handle: Chroma's collection id; else the name
    handle: str
    #: Weaviate and Chroma: field → the kinds of value it holds (``text``, ``int``, ``number``,
    #: ``boolean``), as their schema says; ``None`` where the store keeps no schema (Pinecone)
    properties: Mapping[str, frozenset[str]] | None = None
    #: Pinecone: the records in it (informational)
    count: int | None = None


class Store(Protocol):
    """One backend for one upstream."""

    async def describe(self, name: str) -> Described: ...

    async def upsert(self, ns: Described, records: Sequence[Record]) -> None: ...

    async def query(self, ns: Described, call: QueryCall, metric: Metric) -> list[Match]: ...

    async def fetch(self, ns: Described, ids: Sequence[str], vectors: bool) -> list[Record]: ...

    async def delete(self, ns: Described, ids: Sequence[str]) -> None: ...

    async def aclose(self) -> None: ...


def store_message(raw: bytes) -> str:
    """The message in a store's error body: Pinecone's ``{code, message}``, Weaviate's
    ``{error: [{message}]}``, Chroma's ``{error, message}``; plain text otherwise."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return raw[:MESSAGE_LIMIT].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        message = data.get("message")
        errors = data.get("error")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            message = errors[0].get("message", message)
        if isinstance(message, str):
            return message
    return json.dumps(data)[:MESSAGE_LIMIT]


async def read_upto(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body until its end or past ``limit`` bytes (then ``limit + 1`` of them): one
    ``read(n)`` returns only what has arrived so far."""
    raw = bytearray()
    while len(raw) <= limit:
        piece = await response.content.read(limit + 1 - len(raw))
        if not piece:
            break
        raw += piece
    return bytes(raw)


class StoreHttp:
    """JSON over HTTP to one store, with its key; one per upstream, its pool bounded."""

    def __init__(
        self,
        options: VectorsOptions,
        key: SecretValue | None,
        auth: tuple[str, str],
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self._base = options.url.rstrip("/")
        self._options = options
        self._key = key
        #: (header, value template): ("api-key", "{}"), ("authorization", "Bearer {}")
        self._auth = auth
        self._extra = dict(extra or {})
        self._session: aiohttp.ClientSession | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        headers.update(self._extra)
        if self._key is not None:
            name, template = self._auth
            headers[name] = template.format(self._key.get())
        return headers

    def scrub(self, message: str) -> str:
        key = self._key.get() if self._key is not None else ""
        message = message.replace(key, "[redacted]") if key else message
        return message[:MESSAGE_LIMIT]

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._options.max_connections),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Sequence[tuple[str, str]] = (),
        accept: frozenset[int] = frozenset(),
    ) -> tuple[int, Any]:
        """``(status, parsed JSON or None)`` for a 2xx answer or a status in ``accept``;
        raises the API's error otherwise. Bounded by ``options.timeout``."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout(self._options.timeout):
                session = self._open()
                # no redirects: the key would go along to wherever the store points
                async with session.request(
                    method,
                    self._base + path,
                    data=data,
                    params=list(params),
                    headers=self._headers(),
                    allow_redirects=False,
                ) as response:
                    ok = 200 <= response.status < 300 or response.status in accept
                    limit = self._options.max_response_bytes if ok else ERROR_BODY_LIMIT
                    raw = await read_upto(response, limit)
                    status = response.status
        except TimeoutError:
            raise UpstreamTimeout("the vector store did not answer in time") from None
        except aiohttp.ClientConnectorError:
            raise UpstreamConnectError("cannot connect to the vector store") from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamConnectError("the vector store dropped the call") from None
        if not ok:
            raise self.failure(status, raw)
        if len(raw) > self._options.max_response_bytes:
            raise UpstreamProtocolError("the vector store answered more than max_response_bytes")
        if not raw.strip():
            return status, None
        try:
            return status, json.loads(raw)
        except (ValueError, RecursionError):
            raise UpstreamProtocolError("the vector store answered no JSON") from None

    def failure(self, status: int, raw: bytes) -> ApiError:
        if status in (401, 403):
            return ApiError(
                502, "store_auth", f"the vector store refused the sidecar's key (status {status})"
            )
        message = self.scrub(store_message(raw))
        if status == 429 or status == 503:
            return ApiError(503, "store_busy", f"the vector store is busy ({status}): {message}")
        return ApiError(502, "store_error", f"the vector store answered {status}: {message}")

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
