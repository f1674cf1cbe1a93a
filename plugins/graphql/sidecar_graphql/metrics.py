"""The ``graphql`` plugin's Prometheus families, on the sidecar's own registry (``/metrics``).

Labels are bounded by the config: ``operation`` is a name from ``operations`` or the allow-list,
else ``other`` (an app's operation names are unbounded); ``type`` is ``query``, ``mutation`` or
``subscription``; ``outcome`` is ``ok``, ``partial`` (data and errors), ``failed`` (errors and
no data), ``http_<class>`` (``http_5xx``: the server answered another status) or ``error``
(no answer); ``code`` is one of the codes the upstream's ``code_statuses`` knows (defaults
included), else ``other``; ``reason`` is the refusal's code (a fixed set).

- ``sidecar_graphql_operations_total{upstream,operation,type,outcome}``
- ``sidecar_graphql_errors_total{upstream,operation,code}``: each code of a failed answer
- ``sidecar_graphql_refused_total{upstream,reason}``: requests the sidecar answered itself
- ``sidecar_graphql_operation_duration_seconds{upstream,operation,type}``
"""

from __future__ import annotations

__all__ = ["GraphQLMetrics"]

import weakref

from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GraphQLMetrics:
    """The families, registered once per sidecar's registry (:meth:`of`)."""

    @classmethod
    def of(cls, registry: CollectorRegistry) -> GraphQLMetrics:
        have = _BY_REGISTRY.get(registry)
        if have is None:
            have = _BY_REGISTRY[registry] = cls(registry)
        return have

    def __init__(self, registry: CollectorRegistry) -> None:
        self.operations = Counter(
            "sidecar_graphql_operations",
            "GraphQL operations sent to the server, by outcome.",
            ["upstream", "operation", "type", "outcome"],
            registry=registry,
        )
        self.errors = Counter(
            "sidecar_graphql_errors",
            "Error codes of GraphQL answers that had errors and no data.",
            ["upstream", "operation", "code"],
            registry=registry,
        )
        self.refused = Counter(
            "sidecar_graphql_refused",
            "GraphQL requests the sidecar answered itself, by reason.",
            ["upstream", "reason"],
            registry=registry,
        )
        self.duration = Histogram(
            "sidecar_graphql_operation_duration_seconds",
            "Seconds from a GraphQL request to its answer's head.",
            ["upstream", "operation", "type"],
            buckets=BUCKETS,
            registry=registry,
        )


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, GraphQLMetrics] = (
    weakref.WeakKeyDictionary()
)
