"""The webhooks plugin's Prometheus families, on the sidecar's own registry (``/metrics``).

Labels are bounded by the config: ``upstream`` and ``endpoint`` are configured names, ``outcome``
is one of ``delivered``, ``retry``, ``dead``, ``gone``; ``state`` is ``pending`` or ``dead``.

- ``sidecar_webhooks_accepted_total{upstream}``: events the app posted that were queued
- ``sidecar_webhooks_deliveries_total{upstream,endpoint,outcome}``: delivery attempts by how
  they ended (``retry``: failed, tried again later; ``dead``: failed for the last time;
  ``gone``: the endpoint answered 410 and was disabled)
- ``sidecar_webhooks_queued{upstream,endpoint,state}``: deliveries on disk now
"""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Counter, Gauge

OUTCOMES = ("delivered", "retry", "dead", "gone")


class WebhookMetrics:
    """The families, registered once per sidecar registry (:meth:`of`)."""

    @classmethod
    def of(cls, registry: CollectorRegistry) -> WebhookMetrics:
        have = _BY_REGISTRY.get(registry)
        if have is None:
            have = _BY_REGISTRY[registry] = cls(registry)
        return have

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "sidecar_webhooks_accepted",
            "Events the app posted that were durably queued, by upstream.",
            ["upstream"],
            registry=registry,
        )
        self.deliveries = Counter(
            "sidecar_webhooks_deliveries",
            "Webhook delivery attempts by upstream, endpoint and outcome.",
            ["upstream", "endpoint", "outcome"],
            registry=registry,
        )
        self.queued = Gauge(
            "sidecar_webhooks_queued",
            "Webhook deliveries on disk by upstream, endpoint and state (pending, dead).",
            ["upstream", "endpoint", "state"],
            registry=registry,
        )


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, WebhookMetrics] = (
    weakref.WeakKeyDictionary()
)
