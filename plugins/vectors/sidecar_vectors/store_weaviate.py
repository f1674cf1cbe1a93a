"""Weaviate, through its REST API and its GraphQL ``Get`` (no gRPC).

A namespace is a collection (class) with its default vector. ``GET /v1/schema/{class}`` gives
the metric (``vectorIndexConfig.distance``) and the properties' data types, one object
(``GET /v1/objects?class=..&limit=1&include=vector``) the dimension; writes go through
``POST /v1/batch/objects`` (a batch replaces objects of the same id, so it is an upsert; each
object's own error is read), deletes through ``DELETE /v1/batch/objects`` matching the ids,
queries and fetches through GraphQL (``nearVector``, ``where``, ``_additional {id distance
vector}``). Weaviate ids are UUIDs: each is derived from the app's id (UUIDv5), and the app's id
is kept in a property (``weaviate_id_property``). The key goes in ``Authorization: Bearer``.

``where`` needs each property's type (``valueText``, ``valueInt``, ``valueNumber``,
``valueBoolean``): it is read from the schema. A comparison Weaviate cannot express because no
record could match (a property it does not have, a value of another type) is folded away here,
so the answer is the one the other stores give. Not here: named vectors, multi-tenancy.
"""

from __future__ import annotations

__all__ = ["WeaviateStore", "gql", "object_id", "to_weaviate"]

import json
import uuid
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
    all_of,
    any_of,
    integer_bound,
    is_number,
)
from .results import metadata_out, number, vector_out
from .scores import Metric, from_weaviate, metric_of
from .store import Described, StoreHttp
from .vector_api import ApiError, Match, QueryCall, Record

#: the namespace of the UUIDv5 ids derived from the app's ids
ID_NAMESPACE = uuid.UUID("6f9e2a52-5bb1-4c4e-9f33-3c0bd0a4c7d1")
_OPS = {
    "eq": "Equal",
    "gt": "GreaterThan",
    "gte": "GreaterThanEqual",
    "lt": "LessThan",
    "lte": "LessThanEqual",
}
SCALAR_TYPES = frozenset({"text", "int", "number", "boolean"})

Where = dict[str, Any]


class Enum(str):
    """A GraphQL enum value: written bare, not quoted."""


def object_id(app_id: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, app_id))


def gql(value: object) -> str:
    """A GraphQL input literal of a JSON-like value (enums bare)."""
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{gql(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(gql(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(type(value).__name__)


def _compare(kind: str, op: Op, value: object) -> tuple[str, object] | Nothing:
    """The ``value*`` key and value comparing a property of type ``kind``, or NOTHING."""
    if kind == "text":
        return ("valueText", value) if isinstance(value, str) else NOTHING
    if kind == "boolean":
        return ("valueBoolean", value) if isinstance(value, bool) and op == "eq" else NOTHING
    if not is_number(value):
        return NOTHING
    assert isinstance(value, int | float)
    if kind == "number":
        return ("valueNumber", float(value))
    if kind != "int":
        return NOTHING
    if float(value).is_integer():
        return ("valueInt", int(value))
    # an int property against a fraction: the same records, compared with an integer
    bound = integer_bound(op, value)
    return NOTHING if bound is None else ("valueInt", bound)


def _kind(kinds: Mapping[str, frozenset[str]], name: str) -> str:
    have = kinds.get(name, frozenset())
    return next(iter(have)) if len(have) == 1 else ""


def to_weaviate(tree: Filter, types: Mapping[str, frozenset[str]]) -> Where | Nothing:
    """Our filter as Weaviate's ``where`` given the properties' types, or NOTHING."""
    match tree:
        case Compare(field=f, op=op, value=v):
            cmp = _compare(_kind(types, f), op, v)
            if isinstance(cmp, Nothing):
                return NOTHING
            return {"operator": Enum(_OPS[op]), "path": [f], cmp[0]: cmp[1]}
        case OneOf(field=f, values=values):
            kind = _kind(types, f)
            if kind == "text":
                usable: list[object] = [v for v in values if isinstance(v, str)]
                key = "valueTextArray"
            elif kind == "int":
                usable = [int(v) for v in values if is_number(v) and float(v).is_integer()]
                key = "valueIntArray"
            elif kind == "number":
                usable = [float(v) for v in values if is_number(v)]
                key = "valueNumberArray"
            else:
                return NOTHING
            if not usable:
                return NOTHING
            return {"operator": Enum("ContainsAny"), "path": [f], key: usable}
        case All(parts=parts):
            return all_of([to_weaviate(p, types) for p in parts], lambda ps: _join("And", ps))
        case AnyOf(parts=parts):
            return any_of([to_weaviate(p, types) for p in parts], lambda ps: _join("Or", ps))
    raise AssertionError(tree)


def _join(operator: str, operands: list[Where]) -> Where:
    return operands[0] if len(operands) == 1 else {"operator": Enum(operator), "operands": operands}


class WeaviateStore:
    def __init__(self, options: VectorsOptions, key: SecretValue | None) -> None:
        self.http = StoreHttp(options, key, ("authorization", "Bearer {}"))
        self.id_property = options.weaviate_id_property

    async def describe(self, name: str) -> Described:
        _, schema = await self.http.call("GET", f"/v1/schema/{quote(name)}")
        schema = schema if isinstance(schema, dict) else {}
        properties: dict[str, frozenset[str]] = {}
        for prop in schema.get("properties") or []:
            if isinstance(prop, dict) and isinstance(prop.get("name"), str):
                kinds = prop.get("dataType")
                if isinstance(kinds, list) and len(kinds) == 1 and kinds[0] in SCALAR_TYPES:
                    properties[prop["name"]] = frozenset(kinds)
        index = schema.get("vectorIndexConfig")
        distance = index.get("distance") if isinstance(index, dict) else None
        # Weaviate's default distance is cosine
        distance = distance if isinstance(distance, str) else "cosine"
        params = [("class", name), ("limit", "1"), ("include", "vector")]
        _, sample = await self.http.call("GET", "/v1/objects", params=params)
        objects = sample.get("objects") if isinstance(sample, dict) else None
        dimension = None
        if isinstance(objects, list) and objects and isinstance(objects[0], dict):
            vector = objects[0].get("vector")
            dimension = len(vector) if isinstance(vector, list) and vector else None
        return Described(
            name=name,
            dimension=dimension,
            metric=metric_of("weaviate", distance),
            reported=distance,
            handle=name,
            properties=properties,
        )

    async def upsert(self, ns: Described, records: Sequence[Record]) -> None:
        objects = [
            {
                "class": ns.handle,
                "id": object_id(r.id),
                "properties": {**r.metadata, self.id_property: r.id},  # type: ignore[dict-item]
                "vector": list(r.vector),
            }
            for r in records
        ]
        _, results = await self.http.call("POST", "/v1/batch/objects", {"objects": objects})
        # the batch answers 200 with each object's own result: one failed is a failed call
        for item in results if isinstance(results, list) else []:
            result = item.get("result") if isinstance(item, dict) else None
            errors = result.get("errors") if isinstance(result, dict) else None
            if errors:
                raise ApiError(
                    502, "store_error", self.http.scrub(f"Weaviate refused an object: {errors}")
                )

    async def _get(self, ns: Described, arguments: dict[str, Any], fields: str) -> list[Any]:
        args = ",".join(f"{k}:{gql(v)}" for k, v in arguments.items())
        query = f"{{Get{{{ns.handle}({args}){{{fields}}}}}}}"
        _, data = await self.http.call("POST", "/v1/graphql", {"query": query})
        data = data if isinstance(data, dict) else {}
        errors = data.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else {}
            message = first.get("message") if isinstance(first, dict) else None
            raise ApiError(
                502, "store_error", self.http.scrub(f"Weaviate answered an error: {message}")
            )
        got = data.get("data")
        got = got.get("Get") if isinstance(got, dict) else None
        found = got.get(ns.handle) if isinstance(got, dict) else None
        return found if isinstance(found, list) else []

    def _fields(self, ns: Described, metadata: bool, extra: str) -> str:
        names = [self.id_property, *(p for p in (ns.properties or {}) if p != self.id_property)]
        return " ".join(names if metadata else [self.id_property]) + f" _additional{{{extra}}}"

    async def query(self, ns: Described, call: QueryCall, metric: Metric) -> list[Match]:
        if self.id_property not in (ns.properties or {}):
            return []  # nothing was ever written here through the sidecar
        arguments: dict[str, Any] = {"nearVector": {"vector": list(call.vector)}}
        arguments["limit"] = call.top_k
        if call.filter is not None:
            where = to_weaviate(call.filter, (ns.properties or {}))
            if isinstance(where, Nothing):
                return []  # no record can match: Weaviate is not asked
            arguments["where"] = where
        extra = "id distance vector" if call.include_vectors else "id distance"
        out: list[Match] = []
        for obj in await self._get(ns, arguments, self._fields(ns, call.include_metadata, extra)):
            if not isinstance(obj, dict) or not isinstance(obj.get(self.id_property), str):
                continue
            more = obj.get("_additional")
            more = more if isinstance(more, dict) else {}
            out.append(
                Match(
                    id=obj[self.id_property],
                    score=from_weaviate(metric, number(more.get("distance"))),
                    metadata=self._metadata(obj) if call.include_metadata else None,
                    vector=vector_out(more.get("vector")) if call.include_vectors else None,
                )
            )
        return out

    def _metadata(self, obj: dict[str, Any]) -> dict[str, Any]:
        return metadata_out(obj, frozenset({self.id_property, "_additional"}))

    def _ids_where(self, ids: Sequence[str]) -> Where:
        return {"operator": Enum("ContainsAny"), "path": [self.id_property], "valueTextArray": ids}

    async def fetch(self, ns: Described, ids: Sequence[str], vectors: bool) -> list[Record]:
        if self.id_property not in (ns.properties or {}):
            return []
        arguments = {"where": self._ids_where(list(ids)), "limit": len(ids)}
        extra = "id vector" if vectors else "id"
        found: dict[str, Record] = {}
        for obj in await self._get(ns, arguments, self._fields(ns, True, extra)):
            if isinstance(obj, dict) and isinstance(obj.get(self.id_property), str):
                more = obj.get("_additional")
                vector = vector_out(more.get("vector")) if isinstance(more, dict) else None
                rid = obj[self.id_property]
                found[rid] = Record(rid, vector or (), self._metadata(obj))
        return [found[rid] for rid in ids if rid in found]

    async def delete(self, ns: Described, ids: Sequence[str]) -> None:
        if self.id_property not in (ns.properties or {}):
            return
        body = {
            # the enums are strings to json: the same where, as REST takes it
            "match": {"class": ns.handle, "where": self._ids_where(list(ids))},
            "output": "minimal",
            "dryRun": False,
        }
        await self.http.call("DELETE", "/v1/batch/objects", body)

    async def aclose(self) -> None:
        await self.http.aclose()
