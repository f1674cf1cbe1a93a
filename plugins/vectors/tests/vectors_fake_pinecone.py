"""A test Pinecone index on 127.0.0.1: the data-plane REST API as Pinecone documents it.

One dense index (``dimension``, ``metric``: ``cosine``, ``dotproduct`` or ``euclidean``) with
namespaces: ``POST /vectors/upsert``, ``POST /query``, ``GET /vectors/fetch``, ``POST
/vectors/delete``, ``POST /describe_index_stats``, each checking the ``Api-Key`` header. Errors
are Pinecone's ``{"code", "message", "details"}`` (gRPC status codes: 3 INVALID_ARGUMENT, 16
UNAUTHENTICATED). Scores are Pinecone's: cosine similarity, dot product, squared Euclidean
distance (lower is closer). Metadata numbers are kept as floats, as Pinecone keeps them. The
filter is Pinecone's language ($eq $ne $gt $gte $lt $lte $in $nin $exists $and $or). Not a
full Pinecone: no sparse vectors, no control plane. ``test_fakes_faithful.py`` drives it with
the official ``pinecone`` client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from vectors_fake_store import FakeStore, cosine, dot, is_number, squared_l2

PINECONE_TEST_KEY = "pcsk_test_0000000000000000000000"


def error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "details": []}, status=status)


class Invalid(Exception):
    pass


def matches(metadata: dict[str, Any], flt: dict[str, Any]) -> bool:
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(metadata, f) for f in cond):
                return False
        elif key == "$or":
            if not any(matches(metadata, f) for f in cond):
                return False
        elif key.startswith("$"):
            raise Invalid(f"unknown operator {key}")
        else:
            ops = cond if isinstance(cond, dict) else {"$eq": cond}
            for op, value in ops.items():
                if not _holds(metadata, key, op, value):
                    return False
    return True


def _same(a: object, b: object) -> bool:
    if is_number(a) and is_number(b):
        return float(a) == float(b)  # type: ignore[arg-type]
    return type(a) is type(b) and a == b


def _holds(metadata: dict[str, Any], key: str, op: str, value: Any) -> bool:
    have = metadata.get(key)
    if op == "$exists":
        return (key in metadata) == bool(value)
    if op == "$eq":
        return key in metadata and _same(have, value)
    if op == "$ne":
        return not (key in metadata and _same(have, value))
    if op in ("$in", "$nin"):
        if not isinstance(value, list):
            raise Invalid(f"{op} takes an array")
        inside = key in metadata and any(_same(have, v) for v in value)
        return inside if op == "$in" else not inside
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not is_number(value):
            raise Invalid(f"{op} takes a number")
        if not is_number(have):
            return False
        return {"$gt": have > value, "$gte": have >= value, "$lt": have < value}.get(
            op, have <= value
        )
    raise Invalid(f"unknown operator {op}")


class FakePinecone(FakeStore):
    def __init__(
        self, api_key: str = PINECONE_TEST_KEY, *, dimension: int = 3, metric: str = "cosine"
    ) -> None:
        super().__init__(api_key)
        self.dimension = dimension
        self.metric = metric
        #: namespace → id → {"id", "values", "metadata"}
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        #: seconds each query waits before answering (a slow index)
        self.query_delay = 0.0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/vectors/upsert", self._upsert)
        app.router.add_post("/query", self._query)
        app.router.add_get("/vectors/fetch", self._fetch)
        app.router.add_post("/vectors/delete", self._delete)
        app.router.add_post("/describe_index_stats", self._stats)

    def clear(self) -> None:
        self.data.clear()
        self.query_delay = 0.0
        self.reset()

    async def _body(
        self, request: web.Request
    ) -> tuple[dict[str, Any] | None, web.Response | None]:
        if request.headers.get("api-key") != self.api_key:
            return None, error(401, 16, "Invalid API Key")
        if request.method == "GET":
            return {}, None
        try:
            body = await request.json()
        except ValueError:
            return None, error(400, 3, "Invalid request body")
        if not isinstance(body, dict):
            return None, error(400, 3, "Invalid request body")
        return body, None

    async def _upsert(self, request: web.Request) -> web.Response:
        body, refused = await self._body(request)
        if refused is not None:
            return refused
        assert body is not None
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            return error(400, 3, "Invalid request: vectors must not be empty")
        for v in vectors:
            values = v.get("values")
            if not isinstance(values, list) or len(values) != self.dimension:
                n = len(values) if isinstance(values, list) else 0
                return error(
                    400,
                    3,
                    f"Vector dimension {n} does not match the dimension of the index "
                    f"{self.dimension}",
                )
        space = self.data.setdefault(body.get("namespace", ""), {})
        for v in vectors:
            metadata = {
                k: float(x) if is_number(x) else x for k, x in (v.get("metadata") or {}).items()
            }
            space[v["id"]] = {"id": v["id"], "values": v["values"], "metadata": metadata}
        return web.json_response({"upsertedCount": len(vectors)})

    def score(self, a: list[float], b: list[float]) -> float:
        if self.metric == "cosine":
            return cosine(a, b)
        if self.metric == "dotproduct":
            return dot(a, b)
        return squared_l2(a, b)

    async def _query(self, request: web.Request) -> web.Response:
        body, refused = await self._body(request)
        if refused is not None:
            return refused
        assert body is not None
        await asyncio.sleep(self.query_delay)
        top_k = body.get("topK")
        if not isinstance(top_k, int) or not 1 <= top_k <= 10_000:
            return error(400, 3, "topK must be between 1 and 10000")
        vector = body.get("vector")
        if not isinstance(vector, list) or len(vector) != self.dimension:
            n = len(vector) if isinstance(vector, list) else 0
            return error(
                400,
                3,
                f"Query vector dimension {n} does not match the dimension of the index "
                f"{self.dimension}",
            )
        namespace = body.get("namespace", "")
        flt = body.get("filter") or {}
        try:
            hits = [
                (self.score(vector, v["values"]), v)
                for v in self.data.get(namespace, {}).values()
                if matches(v["metadata"], flt)
            ]
        except Invalid as e:
            return error(400, 3, f"illegal condition for field filter: {e}")
        hits.sort(key=lambda h: h[0], reverse=self.metric != "euclidean")
        out = []
        for score, v in hits[:top_k]:
            item: dict[str, Any] = {"id": v["id"], "score": score, "values": []}
            if body.get("includeValues"):
                item["values"] = v["values"]
            if body.get("includeMetadata") and v["metadata"]:
                item["metadata"] = v["metadata"]
            out.append(item)
        return web.json_response(
            {"results": [], "matches": out, "namespace": namespace, "usage": {"readUnits": 5}}
        )

    async def _fetch(self, request: web.Request) -> web.Response:
        _, refused = await self._body(request)
        if refused is not None:
            return refused
        ids = request.query.getall("ids", [])
        if not ids:
            return error(400, 3, "No IDs provided")
        namespace = request.query.get("namespace", "")
        space = self.data.get(namespace, {})
        found = {i: space[i] for i in ids if i in space}
        return web.json_response(
            {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}
        )

    async def _delete(self, request: web.Request) -> web.Response:
        body, refused = await self._body(request)
        if refused is not None:
            return refused
        assert body is not None
        space = self.data.get(body.get("namespace", ""), {})
        if body.get("deleteAll"):
            space.clear()
        for i in body.get("ids") or []:
            space.pop(i, None)
        return web.json_response({})

    async def _stats(self, request: web.Request) -> web.Response:
        _, refused = await self._body(request)
        if refused is not None:
            return refused
        namespaces = {
            (name or "__default__"): {"vectorCount": len(space)}
            for name, space in self.data.items()
            if space
        }
        return web.json_response(
            {
                "namespaces": namespaces,
                "dimension": self.dimension,
                "indexFullness": 0.0,
                "totalVectorCount": sum(len(s) for s in self.data.values()),
                "metric": self.metric,
                "vectorType": "dense",
            }
        )
