"""What operators see of the policies' live state: ``/upstreams`` entries and scrape-time gauges.

Per-upstream policy objects (breakers, limiters, budgets, buckets) are kept by the running
sidecar as a :class:`~sidecar.api.SharedState` under typed keys (see ``RouteContext.shared``).
Any such object may offer

- ``describe() -> dict``: listed on ``/upstreams`` under the upstream's ``"policies"`` by kind;
- ``gauges() -> iterable of (family, help, value)``: exported on ``/metrics`` as gauges labelled
  by ``upstream``, read when Prometheus scrapes, so the data path never updates a gauge.

Only the objects of the live route table are shown: a reload that replaces a policy's state
replaces what is shown, and an upstream that is gone disappears. Not here: the objects themselves.
"""

from __future__ import annotations

__all__ = ["PolicyStateCollector", "describe_policies"]

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from ..api.shared import SharedState

log = logging.getLogger("sidecar.policies")


def describe_policies(shared: SharedState, upstream: str) -> dict[str, Any]:
    """``{kind: obj.describe()}`` for the upstream's shared objects that describe themselves."""
    out: dict[str, Any] = {}
    for held in shared.of(upstream):
        kind, obj = held.kind, held.obj
        describe = getattr(obj, "describe", None)
        if describe is None:
            continue
        try:
            out[kind] = describe()
        except Exception:
            # a view must not take /upstreams down with it
            log.exception("describe() failed", extra={"fields": {"policy": kind}})
            out[kind] = {"error": "describe() failed"}
    return out


class PolicyStateCollector:
    """A Prometheus collector over the live shared objects' ``gauges()``."""

    def __init__(self, shared: Callable[[], SharedState]) -> None:
        self._shared = shared

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families: dict[str, GaugeMetricFamily] = {}
        for held in self._shared():
            upstream, obj = held.upstream, held.obj
            gauges = getattr(obj, "gauges", None)
            if gauges is None:
                continue
            for name, doc, value in gauges():
                fam = families.get(name)
                if fam is None:
                    fam = families[name] = GaugeMetricFamily(name, doc, labels=["upstream"])
                fam.add_metric([upstream], value)
        return families.values()
