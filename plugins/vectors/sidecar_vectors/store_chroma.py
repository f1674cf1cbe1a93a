"""Chroma, through its HTTP API v2 (Chroma 1.x).

Collections live under ``/api/v2/tenants/{tenant}/databases/{database}/collections``: one is
looked up by name (its id, ``dimension`` and ``configuration_json.hnsw.space``), then addressed
by id: ``/upsert``, ``/query``, ``/get``, ``/delete``. The key, when configured, goes in
``x-chroma-token``. Chroma's ``where`` takes the same operators as ours; it wants an explicit
``$and`` (never two fields in one object) and at least two filters in an ``$and``/``$or``, which
the parsed tree already guarantees. The sidecar never sends documents or texts, so no embedding
function runs. Not here: creating collections (the platform's job, with the metric it wants).
"""

from __future__ import annotations

__all__ = ["ChromaStore", "to_chroma"]

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from sidecar import SecretValue

from .config import VectorsOptions
from .filter_language import All, AnyOf, Compare, Filter, OneOf
from .results import metadata_out, number, vector_out
from .scores import Metric, from_chroma, metric_of
from .store import Described, StoreHttp
from .vector_api import Match, QueryCall, Record

_OPS = {"eq": "$eq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}


def to_chroma(tree: Filter) -> dict[str, Any]:
    """Our filter as Chroma's ``where``."""
    match tree:
        case Compare(field=f, op=op, value=v):
            return {f: {_OPS[op]: v}}
        case OneOf(field=f, values=values):
            return {f: {"$in": list(values)}}
        case All(parts=parts):
            return {"$and": [to_chroma(p) for p in parts]}
        case AnyOf(parts=parts):
            return {"$or": [to_chroma(p) for p in parts]}
    raise AssertionError(tree)


def _space(collection: dict[str, Any]) -> str:
    """The collection's distance function; Chroma's default is ``l2``."""
    config = collection.get("configuration_json")
    if isinstance(config, dict):
        for index in ("hnsw", "spann"):
            section = config.get(index)
            if isinstance(section, dict) and isinstance(section.get("space"), str):
                return str(section["space"])
    metadata = collection.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("hnsw:space"), str):
        return str(metadata["hnsw:space"])
    return "l2"


class ChromaStore:
    def __init__(self, options: VectorsOptions, key: SecretValue | None) -> None:
        self.http = StoreHttp(options, key, ("x-chroma-token", "{}"))
        tenant, database = quote(options.chroma_tenant), quote(options.chroma_database)
        self.base = f"/api/v2/tenants/{tenant}/databases/{database}/collections"

    async def describe(self, name: str) -> Described:
        _, data = await self.http.call("GET", f"{self.base}/{quote(name)}")
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise ValueError("Chroma answered no collection")
        dimension = data.get("dimension")
        return Described(
            name=name,
            dimension=dimension if isinstance(dimension, int) and dimension > 0 else None,
            metric=metric_of("chroma", _space(data)),
            handle=data["id"],
        )

    def _at(self, ns: Described, verb: str) -> str:
        return f"{self.base}/{quote(ns.handle)}/{verb}"

    async def upsert(self, ns: Described, records: Sequence[Record]) -> None:
        body = {
            "ids": [r.id for r in records],
            "embeddings": [list(r.vector) for r in records],
            # Chroma refuses an empty metadata object: a record without any sends none
            "metadatas": [r.metadata or None for r in records],
        }
        await self.http.call("POST", self._at(ns, "upsert"), body)

    async def query(self, ns: Described, call: QueryCall, metric: Metric) -> list[Match]:
        include = ["distances"]
        if call.include_metadata:
            include.append("metadatas")
        if call.include_vectors:
            include.append("embeddings")
        body: dict[str, Any] = {
            "query_embeddings": [list(call.vector)],
            "n_results": call.top_k,
            "include": include,
        }
        if call.filter is not None:
            body["where"] = to_chroma(call.filter)
        _, data = await self.http.call("POST", self._at(ns, "query"), body)
        data = data if isinstance(data, dict) else {}
        ids = _first(data.get("ids"))
        distances = _first(data.get("distances"))
        metadatas = _first(data.get("metadatas"))
        embeddings = _first(data.get("embeddings"))
        out: list[Match] = []
        for i, rid in enumerate(ids):
            if not isinstance(rid, str):
                continue
            out.append(
                Match(
                    id=rid,
                    score=from_chroma(metric, number(_at(distances, i))),
                    metadata=metadata_out(_at(metadatas, i)) if call.include_metadata else None,
                    vector=vector_out(_at(embeddings, i)) if call.include_vectors else None,
                )
            )
        return out

    async def fetch(self, ns: Described, ids: Sequence[str], vectors: bool) -> list[Record]:
        include = ["metadatas", "embeddings"] if vectors else ["metadatas"]
        body = {"ids": list(ids), "include": include}
        _, data = await self.http.call("POST", self._at(ns, "get"), body)
        data = data if isinstance(data, dict) else {}
        got = data.get("ids")
        got = got if isinstance(got, list) else []
        metadatas, embeddings = data.get("metadatas"), data.get("embeddings")
        found = {
            rid: Record(rid, vector_out(_at(embeddings, i)) or (), metadata_out(_at(metadatas, i)))
            for i, rid in enumerate(got)
            if isinstance(rid, str)
        }
        return [found[rid] for rid in ids if rid in found]

    async def delete(self, ns: Described, ids: Sequence[str]) -> None:
        await self.http.call("POST", self._at(ns, "delete"), {"ids": list(ids)})

    async def aclose(self) -> None:
        await self.http.aclose()


def _first(value: object) -> list[Any]:
    """The answer for the first (only) query embedding."""
    if isinstance(value, list) and value and isinstance(value[0], list):
        return value[0]
    return []


def _at(values: object, i: int) -> object:
    return values[i] if isinstance(values, list) and i < len(values) else None
