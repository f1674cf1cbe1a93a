"""sidecar-graphql: a GraphQL server as a sidecar upstream (``adapter: graphql``).

Apps call ``POST /<upstream>/graphql`` (or ``GET`` for a query) exactly as they would the
server. The sidecar parses each document once (graphql-core), refuses what is over the limits
(depth, aliases, root fields, tokens, size) before the server sees a byte, resolves automatic
persisted queries (memory or Redis) and enforces an allow-list, retries queries but never a
mutation not marked idempotent, refuses subscriptions unless enabled, and counts an answer
with ``errors`` and no ``data`` as a failure for the circuit breaker, retry and its metrics.
Imports only ``sidecar``, the public plugin API. Docs: ``docs/graphql.md``.
"""

from __future__ import annotations

from sidecar import AdapterRegistry, FilterRegistry, LifespanRegistry, Phase, hookimpl

from .adapter import GraphQLAdapter
from .gate import make_filter
from .persisted import stores_lifespan

#: The plugin API major version this plugin is written for.
SIDECAR_API = 1


@hookimpl
def sidecar_register_adapters(registry: AdapterRegistry) -> None:
    registry.add("graphql", GraphQLAdapter)


@hookimpl
def sidecar_register_filters(registry: FilterRegistry) -> None:
    # EXTEND: after the sidecar's admission decisions (a refused call is not read), outside
    # the timeout and the retries: a document is read and checked once, and its retry
    # decided (see .gate) before the retry filter looks at the request
    registry.add("graphql", make_filter, phase=Phase.EXTEND)


@hookimpl
def sidecar_register_lifespans(registry: LifespanRegistry) -> None:
    # entered before routes are composed: the filter factories find the stores published
    registry.add("graphql_stores", stores_lifespan)
