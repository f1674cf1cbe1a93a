"""The app-facing JSON API: each call's body parsed into a typed, bounded request, and answers.

``POST /<upstream>/upsert``, ``/query``, ``/fetch``, ``/delete`` and ``GET /<upstream>/describe``
(docs/vectors.md has the shapes). Everything the app sends is checked here, before a store is
asked anything: ids, vectors (finite numbers), metadata (flat: strings, numbers, booleans under
plain field names), ``top_k`` and the batch size against the upstream's bounds, the filter
(:mod:`.filter_language`). Not here: the dimension (known from the store, :mod:`.describe`),
talking to a store.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "DeleteCall",
    "FetchCall",
    "Match",
    "QueryCall",
    "Record",
    "UpsertCall",
    "error_response",
    "json_response",
    "parse_delete",
    "parse_fetch",
    "parse_query",
    "parse_upsert",
]

import json
import math
from dataclasses import dataclass, field
from typing import Any

from sidecar import Headers, Response

from .filter_language import FIELD, Filter, FilterError, Scalar, parse_filter

MAX_ID = 512
MAX_METADATA_KEYS = 64
MAX_METADATA_STRING = 8192


class ApiError(Exception):
    """A call refused or failed, answered as ``{"error": {"code", "message"}}`` with
    ``x-sidecar-error: <code>`` (the sidecar's answer, not the store's)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Record:
    id: str
    vector: tuple[float, ...]
    metadata: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    id: str
    score: float
    metadata: dict[str, Scalar] | None = None
    vector: tuple[float, ...] | None = None


@dataclass(frozen=True)
class UpsertCall:
    namespace: str | None
    records: tuple[Record, ...]


@dataclass(frozen=True)
class QueryCall:
    namespace: str | None
    vector: tuple[float, ...]
    top_k: int
    filter: Filter | None
    include_metadata: bool
    include_vectors: bool


@dataclass(frozen=True)
class FetchCall:
    namespace: str | None
    ids: tuple[str, ...]
    include_vectors: bool


@dataclass(frozen=True)
class DeleteCall:
    namespace: str | None
    ids: tuple[str, ...]


def bad(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def json_response(status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    items = [("content-type", "application/json"), *headers]
    return Response(status, Headers(items), data)


def error_response(error: ApiError) -> Response:
    body = {"error": {"code": error.code, "message": error.message}}
    return json_response(error.status, body, (("x-sidecar-error", error.code),))


def _object(body: object, keys: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad("the body is not a JSON object")
    unknown = sorted(k for k in body if k not in keys)
    if unknown:
        raise bad(f"unknown field {unknown[0][:64]!r} (expected {', '.join(sorted(keys))})")
    return body


def _namespace(body: dict[str, Any]) -> str | None:
    ns = body.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise bad("namespace: expected a string")
    return ns


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise bad(f"{key}: expected a boolean")
    return value


def _id(value: object, where: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID:
        raise bad(f"{where}: expected a string of 1 to {MAX_ID} characters")
    return value


def _ids(body: dict[str, Any], max_batch: int) -> tuple[str, ...]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= max_batch:
        raise bad(f"ids: expected a list of 1 to {max_batch} ids")
    return tuple(dict.fromkeys(_id(v, f"ids[{i}]") for i, v in enumerate(ids)))


def _vector(value: object, where: str) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise bad(f"{where}: expected a non-empty list of numbers")
    out: list[float] = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise bad(f"{where}: expected finite numbers only")
        out.append(float(x))
    return tuple(out)


def _metadata(value: object, where: str) -> dict[str, Scalar]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_METADATA_KEYS:
        raise bad(f"{where}: expected an object of at most {MAX_METADATA_KEYS} fields")
    out: dict[str, Scalar] = {}
    for key, item in value.items():
        if not FIELD.match(key):
            raise bad(f"{where}: {key[:64]!r} is not a field name (letters, digits, _)")
        if isinstance(item, str) and len(item) <= MAX_METADATA_STRING:
            out[key] = item
        elif isinstance(item, bool | int) or (isinstance(item, float) and math.isfinite(item)):
            out[key] = item
        else:
            raise bad(
                f"{where}.{key}: expected a string (at most {MAX_METADATA_STRING} characters), "
                "a finite number or a boolean"
            )
    return out


def parse_upsert(body: object, max_batch: int) -> UpsertCall:
    data = _object(body, {"namespace", "vectors"})
    items = data.get("vectors")
    if not isinstance(items, list) or not 1 <= len(items) <= max_batch:
        raise bad(f"vectors: expected a list of 1 to {max_batch} records")
    records: dict[str, Record] = {}
    for i, item in enumerate(items):
        where = f"vectors[{i}]"
        rec = _object(item, {"id", "vector", "metadata"}) if isinstance(item, dict) else None
        if rec is None:
            raise bad(f"{where}: expected an object")
        rid = _id(rec.get("id"), f"{where}.id")
        # the last record of an id wins, as a store would keep the last write
        vector = _vector(rec.get("vector"), f"{where}.vector")
        records[rid] = Record(rid, vector, _metadata(rec.get("metadata"), f"{where}.metadata"))
    return UpsertCall(_namespace(data), tuple(records.values()))


def parse_query(body: object, max_top_k: int) -> QueryCall:
    keys = {"namespace", "vector", "top_k", "filter", "include_metadata", "include_vectors"}
    data = _object(body, keys)
    top_k = data.get("top_k", 10)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= max_top_k:
        raise ApiError(400, "invalid_request", f"top_k: expected an integer from 1 to {max_top_k}")
    try:
        tree = parse_filter(data.get("filter"))
    except FilterError as e:
        raise ApiError(400, "invalid_filter", str(e)) from None
    return QueryCall(
        _namespace(data),
        _vector(data.get("vector"), "vector"),
        top_k,
        tree,
        _flag(data, "include_metadata", True),
        _flag(data, "include_vectors", False),
    )


def parse_fetch(body: object, max_batch: int) -> FetchCall:
    data = _object(body, {"namespace", "ids", "include_vectors"})
    return FetchCall(_namespace(data), _ids(data, max_batch), _flag(data, "include_vectors", True))


def parse_delete(body: object, max_batch: int) -> DeleteCall:
    data = _object(body, {"namespace", "ids"})
    return DeleteCall(_namespace(data), _ids(data, max_batch))


def match_json(match: Match) -> dict[str, Any]:
    out: dict[str, Any] = {"id": match.id, "score": match.score}
    if match.metadata is not None:
        out["metadata"] = match.metadata
    if match.vector is not None:
        out["vector"] = list(match.vector)
    return out
