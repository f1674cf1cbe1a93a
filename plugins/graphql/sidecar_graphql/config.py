"""The ``graphql`` adapter's options (``upstreams.<u>.options``), validated by ``sidecar check``.

Where the server's endpoint is, the limits a document must pass before the server sees a byte,
persisted queries (APQ and the allow-list), which mutations may be retried, whether subscriptions
pass, and how an errors-only answer's ``extensions.code`` maps onto the statuses retry and the
circuit breaker already match. Every default is bounded. Not here: reading the allow-list file
(:mod:`.allow_list`), the Redis connection (:mod:`.persisted`).
"""

from __future__ import annotations

__all__ = ["GraphQLOptions", "Limits", "PersistedQueries", "QueryCache"]

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sidecar import Duration, Model, Size

#: an operation name as GraphQL spells one; it may become a metric label
OPERATION_NAME = r"^[_A-Za-z][_0-9A-Za-z]{0,127}$"
#: an ``extensions.code`` as servers write them (``INTERNAL_SERVER_ERROR``)
ERROR_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")

#: the codes every GraphQL server family uses, mapped to the status their failure means: the
#: conditions retry and the circuit breaker match (``5xx``...) then apply without new config
DEFAULT_CODE_STATUSES: dict[str, int] = {
    "GRAPHQL_PARSE_FAILED": 400,
    "GRAPHQL_VALIDATION_FAILED": 400,
    "BAD_USER_INPUT": 400,
    "BAD_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "INTERNAL_SERVER_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
    "UNAVAILABLE": 503,
}


class Limits(Model):
    """``limits``: what a document may be, checked by the sidecar before the server sees it."""

    #: nesting of selections, fragments followed (``{a {b}}`` is 2).
    max_depth: int = Field(15, ge=1, le=200)
    #: aliased fields in the operation, fragments counted where they are spread.
    max_aliases: int = Field(30, ge=0, le=100_000)
    #: fields selected at the operation's root (each one a resolver call on the server).
    max_root_fields: int = Field(20, ge=1, le=100_000)
    #: lexical tokens of the document; parsing stops at the first one over.
    max_tokens: int = Field(5000, ge=10, le=1_000_000)
    #: bytes of the document text (UTF-8); over it: 413.
    max_document_bytes: Size = Field(32 * 1024, ge=16, le=16 * 1024 * 1024)
    #: bytes of the whole request body (document, variables, extensions); over it: 413.
    max_request_bytes: Size = Field(1024 * 1024, ge=64, le=64 * 1024 * 1024)


class QueryCache(Model):
    """``persisted_queries.cache``: where APQ registrations are kept."""

    type: Literal["memory", "redis"] = "memory"
    #: memory: documents kept (least recently used dropped first).
    max_entries: int = Field(10_000, ge=1, le=1_000_000)
    #: redis: where (``redis://host:port/db``); redis-py is imported only for this.
    url: str | None = Field(None, pattern=r"^rediss?://[^\s]+$")
    #: redis: key prefix (the hash follows it).
    key_prefix: str = Field("sidecar:graphql:apq:", max_length=128)
    #: redis: how long a registration lives after its last use.
    ttl: Duration = Field(24 * 3600.0, gt=0)
    #: redis: one command's budget; past it the document is treated as not found.
    timeout: Duration = Field(0.05, gt=0)

    @model_validator(mode="after")
    def _redis_has_url(self) -> QueryCache:
        if self.type == "redis" and self.url is None:
            raise ValueError("a redis cache needs its url (redis://host:port/db)")
        return self


class PersistedQueries(Model):
    """``persisted_queries``: Apollo's automatic persisted queries and an allow-list."""

    #: accept ``extensions.persistedQuery`` (hash only, then hash and document to register).
    automatic: bool = True
    cache: QueryCache = QueryCache()
    #: a JSON file of the operations allowed (see docs/graphql.md); when set, only those pass.
    allow_list: str | None = Field(None, min_length=1)


class GraphQLOptions(Model):
    """``upstreams.<u>.options`` of an ``adapter: graphql`` upstream."""

    #: the server's GraphQL path, appended to the upstream's ``url``; apps call
    #: ``/<upstream>/graphql`` whatever it is.
    endpoint: str = Field("/graphql", pattern=r"^/[^\s?#]*$")
    limits: Limits = Limits()
    persisted_queries: PersistedQueries = PersistedQueries()
    #: operation names counted under their own name in metrics (with the allow-list's); any
    #: other operation is counted as ``other``.
    operations: list[str] = Field(default_factory=list, max_length=1000)
    #: mutations that may be sent again after a failure (by operation name); no other mutation
    #: is ever retried.
    idempotent_mutations: list[str] = Field(default_factory=list, max_length=1000)
    #: pass subscriptions on (their answer streamed back on the same HTTP call); refused
    #: otherwise.
    subscriptions: bool = False
    #: ``extensions.code`` → the HTTP status whose conditions an errors-only answer with that
    #: code gets (merged over the defaults documented in docs/graphql.md).
    code_statuses: dict[str, int] = Field(default_factory=dict, max_length=200)
    #: the status of an errors-only answer whose errors carry no known code.
    uncoded_status: int = Field(500, ge=400, le=599)
    #: the server's answer is read whole (to classify it) up to this size; larger: 502.
    max_response_bytes: Size = Field(16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # no max_connections: the upstream's own ``pool`` section bounds the connections (the
    # server is called through the sidecar's HTTP client)

    @field_validator("operations", "idempotent_mutations")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(OPERATION_NAME, name):
                raise ValueError(f"{name[:64]!r} is not a GraphQL operation name")
        return value

    @field_validator("code_statuses")
    @classmethod
    def _codes(cls, value: dict[str, int]) -> dict[str, int]:
        for code, status in value.items():
            if not ERROR_CODE.match(code):
                raise ValueError(f"{code[:64]!r} is not an error code (letters, digits, _ . -)")
            if not 400 <= status <= 599:
                raise ValueError(f"{code}: a failure's status is 400-599, got {status}")
        return value

    def statuses(self) -> dict[str, int]:
        """The code → status map in force (defaults, then ``code_statuses``)."""
        return {**DEFAULT_CODE_STATUSES, **self.code_statuses}
