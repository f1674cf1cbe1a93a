"""A GraphQL request as the app sent it: ``POST`` with a JSON body, or ``GET`` with the
``query``, ``operationName``, ``variables`` and ``extensions`` parameters (GraphQL over HTTP).

Only the envelope is read here; the document is parsed by :mod:`.document`. A batch (a JSON
array) is refused: one call is one operation, so limits, metrics and retries stay per
operation. Not here: persisted queries (:mod:`.persisted`).
"""

from __future__ import annotations

__all__ = ["GraphQLRequest", "from_get", "from_post"]

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .answers import Refusal


@dataclass
class GraphQLRequest:
    """``query`` is ``None`` when the app sent only a persisted query's hash."""

    query: str | None
    operation_name: str | None
    variables: Any
    extensions: dict[str, Any] | None

    def persisted_hash(self) -> str | None:
        """``extensions.persistedQuery.sha256Hash`` (version 1), if the app sent one."""
        pq = (self.extensions or {}).get("persistedQuery")
        if not isinstance(pq, dict):
            return None
        if pq.get("version", 1) != 1:
            raise Refusal(400, "PERSISTED_QUERY_NOT_SUPPORTED", "persistedQuery version 1 only")
        digest = pq.get("sha256Hash")
        if not isinstance(digest, str):
            raise Refusal(400, "BAD_REQUEST", "persistedQuery.sha256Hash: expected a string")
        return digest.lower()

    def upstream_body(self) -> bytes:
        """The JSON body sent to the server: the whole document, never the persisted-query
        extension (the server need not know APQ)."""
        out: dict[str, Any] = {"query": self.query}
        if self.operation_name is not None:
            out["operationName"] = self.operation_name
        if self.variables is not None:
            out["variables"] = self.variables
        extensions = {k: v for k, v in (self.extensions or {}).items() if k != "persistedQuery"}
        if extensions:
            out["extensions"] = extensions
        return json.dumps(out, separators=(",", ":")).encode()


def _envelope(data: Any) -> GraphQLRequest:
    if isinstance(data, list):
        raise Refusal(400, "BATCHING_NOT_SUPPORTED", "batched operations are not accepted")
    if not isinstance(data, dict):
        raise Refusal(400, "BAD_REQUEST", "the body is not a JSON object")
    query = data.get("query")
    name = data.get("operationName")
    variables = data.get("variables")
    extensions = data.get("extensions")
    if not isinstance(query, str | None):
        raise Refusal(400, "BAD_REQUEST", "query: expected a string")
    if not isinstance(name, str | None):
        raise Refusal(400, "BAD_REQUEST", "operationName: expected a string")
    if not isinstance(variables, dict | None):
        raise Refusal(400, "BAD_REQUEST", "variables: expected an object")
    if not isinstance(extensions, dict | None):
        raise Refusal(400, "BAD_REQUEST", "extensions: expected an object")
    return GraphQLRequest(query, name or None, variables, extensions)


def from_post(body: bytes) -> GraphQLRequest:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser
        raise Refusal(400, "BAD_REQUEST", "the body is not JSON") from None
    return _envelope(data)


def from_get(query_string: str) -> GraphQLRequest:
    params = dict(parse_qsl(query_string, keep_blank_values=True))
    data: dict[str, Any] = {"query": params.get("query"), "operationName": None}
    if params.get("operationName"):
        data["operationName"] = params["operationName"]
    for key in ("variables", "extensions"):
        raw = params.get(key)
        if raw:
            try:
                data[key] = json.loads(raw)
            except (ValueError, RecursionError):
                raise Refusal(400, "BAD_REQUEST", f"{key}: not JSON") from None
    return _envelope(data)
