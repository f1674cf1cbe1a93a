"""Chroma, through its HTTP API v2 (Chroma 1.x).

Collections live under ``/api/v2/tenants/{tenant}/databases/{database}/collections``: one is
looked up by name (its id, ``dimension`` and ``configuration_json.hnsw.space``), then addressed
by id: ``/upsert``, ``/query``, ``/get``, ``/delete``. The key, when configured, goes in
``x-chroma-token``. Chroma's ``where`` takes the same operators as ours; it wants an explicit
``$and`` (never two fields in one object) and at least two filters in an ``$and``/``$or``, which
the parsed tree already guarantees. Its upsert merges metadata, so the fields a new record
lacks are removed explicitly (read first: two calls, not atomic against a concurrent writer of
the same id). The sidecar never sends documents or texts, so no embedding
function runs. Not here: creating collections (the platform's job, with the metric it wants).
"""

from __future__ import annotations

__all__ = ["ChromaStore", "to_chroma"]

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from sidecar import SecretValue

from .config import VectorsOptions
from .filter_language import (
    NOTHING,
    All,
    AnyOf,
    Compare,
    Filter,
    Nothing,
    OneOf,
    Op,
    Scalar,
    all_of,
    any_of,
    integer_bound,
)
from .results import metadata_out, number, vector_out
from .scores import Metric, from_chroma, metric_of
from .store import Described, StoreHttp
from .vector_api import ApiError, Match, QueryCall, Record

_OPS = {"eq": "$eq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}


#: Chroma's schema value types → the kinds the filter translation tells apart
_KINDS = {"int": "int", "float": "number", "string": "text", "bool": "boolean"}


def _number(op: Op, value: float, kinds: frozenset[str], field: str) -> int | float | Nothing:
    """A number as Chroma must be given it. Chroma compares an integer field with a fraction
    truncated (``year == 2010.5`` matches 2010), so a fraction against integers becomes the
    integer bound selecting the same records."""
    if value.is_integer():
        return int(value)
    if "int" not in kinds:
        return value
    if "number" in kinds:
        raise ApiError(
            400,
            "invalid_filter",
            f"filter: {field!r} holds both integers and fractions in this Chroma collection, "
            "which Chroma cannot compare with a fraction; compare it with an integer",
        )
    bound = integer_bound(op, value)
    return NOTHING if bound is None else bound


def to_chroma(tree: Filter, kinds: Mapping[str, frozenset[str]]) -> dict[str, Any] | Nothing:
    """Our filter as Chroma's ``where`` given the fields' kinds, or NOTHING."""
    match tree:
        case Compare(field=f, op=op, value=v):
            if isinstance(v, float):
                n = _number(op, v, kinds.get(f, frozenset()), f)
                return NOTHING if isinstance(n, Nothing) else {f: {_OPS[op]: n}}
            return {f: {_OPS[op]: v}}
        case OneOf(field=f, values=values):
            have = kinds.get(f, frozenset())
            picked: list[Scalar] = []
            for value in values:
                if isinstance(value, float):
                    n = _number("eq", value, have, f)
                    if not isinstance(n, Nothing):
                        picked.append(n)
                else:
                    picked.append(value)
            if not picked:
                return NOTHING
            # Chroma refuses an $in mixing integers and floats: all floats then
            if any(isinstance(v, float) for v in picked):
                picked = [float(v) for v in picked]
            return {f: {"$in": picked}}
        case All(parts=parts):
            return all_of([to_chroma(p, kinds) for p in parts], lambda ps: _join("$and", ps))
        case AnyOf(parts=parts):
            return any_of([to_chroma(p, kinds) for p in parts], lambda ps: _join("$or", ps))
    raise AssertionError(tree)


def _join(operator: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    # Chroma wants 2 or more filters under $and / $or
    return parts[0] if len(parts) == 1 else {operator: parts}


def _fields(collection: dict[str, Any]) -> dict[str, frozenset[str]]:
    """Each metadata field's kinds of value, from the collection's ``schema.keys``."""
    schema = collection.get("schema")
    keys = schema.get("keys") if isinstance(schema, dict) else None
    out: dict[str, frozenset[str]] = {}
    for name, types in (keys or {}).items() if isinstance(keys, dict) else ():
        if isinstance(name, str) and not name.startswith("#") and isinstance(types, dict):
            out[name] = frozenset(_KINDS[t] for t in types if t in _KINDS)
    return out


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
            reported=_space(data),
            handle=data["id"],
            properties=_fields(data),
        )

    def _at(self, ns: Described, verb: str) -> str:
        return f"{self.base}/{quote(ns.handle)}/{verb}"

    async def upsert(self, ns: Described, records: Sequence[Record]) -> None:
        # Chroma's upsert merges metadata into an existing record's: the fields the new record
        # lacks are sent as null, which removes them, so an upsert replaces as elsewhere
        before = await self.fetch(ns, [r.id for r in records], vectors=False)
        old = {r.id: r.metadata for r in before}
        metadatas: list[dict[str, Any] | None] = []
        for r in records:
            metadata: dict[str, Any] = {k: None for k in old.get(r.id, {}) if k not in r.metadata}
            metadata.update(r.metadata)
            # Chroma refuses an empty metadata object: a record without any sends none
            metadatas.append(metadata or None)
        body = {
            "ids": [r.id for r in records],
            "embeddings": [list(r.vector) for r in records],
            "metadatas": metadatas,
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
            where = to_chroma(call.filter, ns.properties or {})
            if isinstance(where, Nothing):
                return []  # no record can match: Chroma is not asked
            body["where"] = where
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
