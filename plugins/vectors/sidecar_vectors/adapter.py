"""The ``vectors`` adapter: one JSON API in front of whichever store the upstream configures.

``POST /<upstream>/upsert``, ``/query``, ``/fetch``, ``/delete`` and ``GET /<upstream>/describe``.
Each call is parsed and bounded (:mod:`.vector_api`), its namespace resolved and every vector
checked against the namespace's dimension (:mod:`.describe`) before the store is called, then
answered in one shape whatever the backend. Refusals are the sidecar's answers
(``x-sidecar-error``); a store that cannot be reached is ``upstream_connect`` /
``upstream_timeout`` like any upstream.

One adapter per sidecar; each upstream's store client and catalog are kept across reloads while
its options stay equal, and closed once no upstream uses them. Not here: a backend's wire format
(``store_*``).
"""

from __future__ import annotations

__all__ = ["VectorsAdapter"]

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from sidecar import (
    Adapter,
    AdapterServices,
    AuthConfigProblem,
    Exchange,
    Handler,
    Response,
    SecretValue,
    SidecarError,
    UpstreamConfig,
    read_body,
)

from .config import VectorsOptions
from .describe import Catalog
from .store import Store
from .store_chroma import ChromaStore
from .store_pinecone import PineconeStore
from .store_weaviate import WeaviateStore
from .vector_api import (
    ApiError,
    error_response,
    json_response,
    match_json,
    parse_delete,
    parse_fetch,
    parse_query,
    parse_upsert,
)

STORES: dict[str, Callable[[VectorsOptions, SecretValue | None], Store]] = {
    "pinecone": PineconeStore,
    "weaviate": WeaviateStore,
    "chroma": ChromaStore,
}


class UnusableSetting(ValueError):
    """A setting the upstream cannot be built with; ``key`` is its path under the upstream."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


@dataclass
class Upstream:
    options: VectorsOptions
    store: Store
    catalog: Catalog


class VectorsAdapter(Adapter):
    options_model = VectorsOptions

    def __init__(self, services: AdapterServices) -> None:
        super().__init__(services)
        self._live: dict[str, Upstream] = {}
        self._retired: list[Store] = []

    def _upstream(self, name: str, options: VectorsOptions) -> Upstream:
        have = self._live.get(name)
        if have is not None and have.options == options:
            return have
        key = None
        if options.api_key is not None:
            try:
                key = SecretValue(options.api_key, "options.api_key")
            except AuthConfigProblem as e:
                raise UnusableSetting("options.api_key", str(e)) from None
        store = STORES[options.backend](options, key)
        up = Upstream(options, store, Catalog(store, options))
        if have is not None:
            self._retired.append(have.store)
        self._live[name] = up
        return up

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        options = VectorsOptions.model_validate(upstream.options)
        up = self._upstream(name, options)
        attempts = self.services.metrics.attempts(name)
        calls: dict[tuple[str, str], Callable[[Upstream, Any], Awaitable[Response]]] = {
            ("POST", "/upsert"): upsert,
            ("POST", "/query"): query,
            ("POST", "/fetch"): fetch,
            ("POST", "/delete"): delete,
        }

        async def vectors(exchange: Exchange) -> Response:
            path = exchange.path.rstrip("/") or "/"
            try:
                if path == "/describe":
                    if exchange.method != "GET":
                        raise ApiError(405, "method_not_allowed", "describe is GET")
                    return await _counted(attempts, describe(up, exchange.query or ""))
                call = calls.get((exchange.method, path))
                if call is None:
                    if any(p == path for _, p in calls):
                        raise ApiError(405, "method_not_allowed", f"{path} is POST")
                    raise ApiError(
                        404,
                        "unknown_endpoint",
                        "no such call (POST upsert, query, fetch, delete; GET describe)",
                    )
                try:
                    raw = await read_body(exchange, options.max_request_bytes)
                except SidecarError as e:
                    if e.status != 413:
                        raise  # the app's body broke off: the sidecar's own answer
                    raise ApiError(
                        413,
                        "body_too_large",
                        f"the request body is over {options.max_request_bytes} bytes",
                    ) from None
                try:
                    body = json.loads(raw)
                except (ValueError, RecursionError):
                    raise ApiError(400, "invalid_request", "the body is not JSON") from None
                return await _counted(attempts, call(up, body))
            except ApiError as e:
                return error_response(e)

        return vectors

    def describe(self, name: str) -> dict[str, Any]:
        up = self._live.get(name)
        if up is None:
            return {}
        return {
            "backend": up.options.backend,
            "namespaces": sorted(up.options.namespaces),
            "described": up.catalog.describe(),
        }

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        for name in [n for n in self._live if n not in live]:
            self._retired.append(self._live.pop(name).store)
        retired, self._retired = self._retired, []
        for store in retired:
            await store.aclose()

    async def aclose(self) -> None:
        for up in self._live.values():
            await up.store.aclose()
        for store in self._retired:
            await store.aclose()
        self._live.clear()
        self._retired.clear()


async def _counted(attempts: Any, answer: Awaitable[Response]) -> Response:
    """One call of the app counted once in ``sidecar_upstream_attempts_total``."""
    try:
        response = await answer
    except ApiError:
        attempts.response()  # the store answered (a refusal of its own, or of ours)
        raise
    except BaseException as e:
        attempts.failed(e)
        raise
    attempts.response()
    return response


async def upsert(up: Upstream, body: Any) -> Response:
    call = parse_upsert(body, up.options.max_batch)
    if up.options.backend == "weaviate":
        reserved = up.options.weaviate_id_property
        if any(reserved in r.metadata for r in call.records):
            raise ApiError(400, "invalid_request", f"metadata: {reserved!r} is reserved here")
    ns = await up.catalog.resolve(call.namespace)
    for i, record in enumerate(call.records):
        ns.check(record.vector, f"vectors[{i}].vector")
    try:
        await up.store.upsert(ns.described, call.records)
    finally:
        up.catalog.after_upsert(ns, call.records)
    return json_response(200, {"namespace": ns.app_name, "upserted": len(call.records)})


async def query(up: Upstream, body: Any) -> Response:
    call = parse_query(body, up.options.max_top_k)
    ns = await up.catalog.resolve(call.namespace)
    ns.check(call.vector, "vector")
    matches = await up.store.query(ns.described, call, ns.metric)
    # a store's odd score (missing, not a number) is dropped rather than sent as NaN
    kept = sorted((m for m in matches if math.isfinite(m.score)), key=lambda m: -m.score)
    kept = kept[: call.top_k]
    return json_response(
        200,
        {"namespace": ns.app_name, "metric": ns.metric, "matches": [match_json(m) for m in kept]},
    )


async def fetch(up: Upstream, body: Any) -> Response:
    call = parse_fetch(body, up.options.max_batch)
    ns = await up.catalog.resolve(call.namespace)
    records = await up.store.fetch(ns.described, call.ids, call.include_vectors)
    out = []
    for r in records:
        item: dict[str, Any] = {"id": r.id, "metadata": r.metadata}
        if call.include_vectors:
            item["vector"] = list(r.vector)
        out.append(item)
    return json_response(200, {"namespace": ns.app_name, "vectors": out})


async def delete(up: Upstream, body: Any) -> Response:
    call = parse_delete(body, up.options.max_batch)
    ns = await up.catalog.resolve(call.namespace)
    await up.store.delete(ns.described, call.ids)
    return json_response(200, {"namespace": ns.app_name, "deleted": len(call.ids)})


async def describe(up: Upstream, query_string: str) -> Response:
    asked = parse_qs(query_string).get("namespace", [None])[0]
    ns = await up.catalog.resolve(asked)
    return json_response(
        200,
        {
            "backend": up.options.backend,
            "namespace": ns.app_name,
            "dimension": ns.dimension,
            "metric": ns.metric,
            "namespaces": sorted(up.options.namespaces),
        },
    )
