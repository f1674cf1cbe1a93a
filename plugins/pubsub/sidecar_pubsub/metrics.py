"""The pubsub plugin's Prometheus families, on the sidecar's own registry (``/metrics``).

Label values are bounded by the config: ``upstream``, ``topic`` and ``group`` are configured
names (a publish to a topic not in ``topics`` is refused before anything is counted);
``outcome`` is one of a fixed set.

- ``sidecar_pubsub_published_total{upstream,topic,outcome}``: ``ok``, ``unavailable``,
  ``timeout``, ``invalid``
- ``sidecar_pubsub_deliveries_total{upstream,topic,group,outcome}``: each answer of the app:
  ``ack``, ``retry``, ``deadletter``, ``drop``
- ``sidecar_pubsub_dead_lettered_total{upstream,topic,group,reason}``: ``app``, ``exhausted``,
  ``undecodable``
"""

from __future__ import annotations

__all__ = ["PubSubMetrics"]

import weakref

from prometheus_client import CollectorRegistry, Counter

_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, PubSubMetrics] = (
    weakref.WeakKeyDictionary()
)


class PubSubMetrics:
    """The families, registered once per sidecar's registry (:meth:`of`)."""

    @classmethod
    def of(cls, registry: CollectorRegistry) -> PubSubMetrics:
        have = _BY_REGISTRY.get(registry)
        if have is None:
            have = _BY_REGISTRY[registry] = cls(registry)
        return have

    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "sidecar_pubsub_published",
            "Events the app published, by topic and outcome.",
            ["upstream", "topic", "outcome"],
            registry=registry,
        )
        self.deliveries = Counter(
            "sidecar_pubsub_deliveries",
            "Deliveries of messages to the app, by how the app answered.",
            ["upstream", "topic", "group", "outcome"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "sidecar_pubsub_dead_lettered",
            "Messages sent to the dead-letter topic (or dropped without one), by reason.",
            ["upstream", "topic", "group", "reason"],
            registry=registry,
        )
