"""Pinecone, through its data-plane REST API on the index host.

``POST /describe_index_stats`` (dimension, metric, namespaces), ``POST /vectors/upsert``,
``POST /query``, ``GET /vectors/fetch?ids=..&namespace=..``, ``POST /vectors/delete``; the key
in ``Api-Key``, the API version in ``X-Pinecone-Api-Version``. Pinecone's filter language is
the model of ours, so the translation is one to one (``$eq $gt $gte $lt $lte $in $and $or``).
Pinecone keeps every metadata number as a float: integral ones come back as integers
(:func:`.metadata_out`). Not here: the control plane (creating indexes), sparse vectors.
"""

from __future__ import annotations

__all__ = ["PineconeStore", "to_pinecone"]

from collections.abc import Sequence
from typing import Any

from sidecar import SecretValue

from .config import VectorsOptions
from .filter_language import All, AnyOf, Compare, Filter, OneOf
from .results import metadata_out, number, vector_out
from .scores import Metric, from_pinecone, metric_of
from .store import Described, StoreHttp
from .vector_api import Match, QueryCall, Record

_OPS = {"eq": "$eq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}


def to_pinecone(tree: Filter) -> dict[str, Any]:
    """Our filter as Pinecone's (the same operators, explicit ``$and``/``$or``)."""
    match tree:
        case Compare(field=f, op=op, value=v):
            return {f: {_OPS[op]: v}}
        case OneOf(field=f, values=values):
            return {f: {"$in": list(values)}}
        case All(parts=parts):
            return {"$and": [to_pinecone(p) for p in parts]}
        case AnyOf(parts=parts):
            return {"$or": [to_pinecone(p) for p in parts]}
    raise AssertionError(tree)


class PineconeStore:
    def __init__(self, options: VectorsOptions, key: SecretValue | None) -> None:
        version = {"x-pinecone-api-version": options.pinecone_api_version}
        self.http = StoreHttp(options, key, ("api-key", "{}"), version)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        _, data = await self.http.call("POST", path, body)
        return data

    async def describe(self, name: str) -> Described:
        data = await self._post("/describe_index_stats", {})
        data = data if isinstance(data, dict) else {}
        dimension = data.get("dimension")
        reported = data.get("metric")
        namespaces = data.get("namespaces")
        summary = namespaces.get(name or "__default__") if isinstance(namespaces, dict) else None
        count = summary.get("vectorCount") if isinstance(summary, dict) else 0
        return Described(
            name=name,
            dimension=dimension if isinstance(dimension, int) and dimension > 0 else None,
            metric=metric_of("pinecone", reported) if isinstance(reported, str) else None,
            reported=reported if isinstance(reported, str) else None,
            handle=name,
            count=count if isinstance(count, int) else None,
        )

    async def upsert(self, ns: Described, records: Sequence[Record]) -> None:
        vectors = []
        for r in records:
            item: dict[str, Any] = {"id": r.id, "values": list(r.vector)}
            if r.metadata:
                item["metadata"] = r.metadata
            vectors.append(item)
        await self._post("/vectors/upsert", {"vectors": vectors, "namespace": ns.handle})

    async def query(self, ns: Described, call: QueryCall, metric: Metric) -> list[Match]:
        body: dict[str, Any] = {
            "namespace": ns.handle,
            "vector": list(call.vector),
            "topK": call.top_k,
            "includeValues": call.include_vectors,
            "includeMetadata": call.include_metadata,
        }
        if call.filter is not None:
            body["filter"] = to_pinecone(call.filter)
        data = await self._post("/query", body)
        matches = data.get("matches") if isinstance(data, dict) else None
        out: list[Match] = []
        for m in matches if isinstance(matches, list) else []:
            if not isinstance(m, dict) or not isinstance(m.get("id"), str):
                continue
            out.append(
                Match(
                    id=m["id"],
                    score=from_pinecone(metric, number(m.get("score"))),
                    metadata=metadata_out(m.get("metadata")) if call.include_metadata else None,
                    vector=vector_out(m.get("values")) if call.include_vectors else None,
                )
            )
        return out

    async def fetch(self, ns: Described, ids: Sequence[str], vectors: bool) -> list[Record]:
        params = [("ids", i) for i in ids] + [("namespace", ns.handle)]
        _, data = await self.http.call("GET", "/vectors/fetch", params=params)
        found = data.get("vectors") if isinstance(data, dict) else None
        found = found if isinstance(found, dict) else {}
        out: list[Record] = []
        for rid in ids:  # in the order asked
            v = found.get(rid)
            if isinstance(v, dict):
                out.append(
                    Record(rid, vector_out(v.get("values")) or (), metadata_out(v.get("metadata")))
                )
        return out

    async def delete(self, ns: Described, ids: Sequence[str]) -> None:
        await self._post("/vectors/delete", {"ids": list(ids), "namespace": ns.handle})

    async def aclose(self) -> None:
        await self.http.aclose()
