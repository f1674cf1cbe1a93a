"""Upstream health: one answer for every reader (the gRPC health service, the
``sidecar_upstream_health`` gauge, ``/upstreams`` and the dashboard).

An upstream is **unhealthy** while its circuit breaker is not closed (open, or half-open until a
trial call succeeds) or while its adapter says it cannot reach it (:meth:`Adapter.health
<sidecar.api.Adapter.health>`: a gRPC channel in ``TRANSIENT_FAILURE``); **healthy** once it
answered and nothing says otherwise; **unknown** before anything is known (no breaker in its chain
and an adapter that does not tell). Nothing here is on the request path: it is read when someone
asks (a scrape, a health ``Check``, a dashboard refresh, a ``Watch`` poll).

Not here: the breaker itself (:mod:`sidecar.resilience.breaker`), adapters' connectivity.
"""

from __future__ import annotations

__all__ = ["HEALTHY", "UNHEALTHY", "UNKNOWN", "UpstreamHealthCollector", "upstream_health"]

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily

from .filters.circuit_breaker import BREAKER
from .resilience.breaker import CLOSED

if TYPE_CHECKING:
    from .api import RuntimeView

HEALTHY, UNHEALTHY, UNKNOWN = "healthy", "unhealthy", "unknown"


def upstream_health(sidecar: RuntimeView) -> dict[str, str]:
    """Every configured upstream's health, by name."""
    shared = sidecar.shared
    out: dict[str, str] = {}
    for name, up in sidecar.config.upstreams.items():
        adapter = sidecar.adapter(up.adapter)
        reachable = adapter.health(name) if adapter is not None else None
        breaker = shared.get(BREAKER, name)
        if reachable is False or (breaker is not None and breaker.state != CLOSED):
            out[name] = UNHEALTHY
        elif reachable is True or breaker is not None:
            out[name] = HEALTHY
        else:
            out[name] = UNKNOWN
    return out


class UpstreamHealthCollector:
    """``sidecar_upstream_health{upstream}``: 1 healthy, 0 unhealthy, -1 unknown, read at scrape
    time from :func:`upstream_health`."""

    _VALUES = {HEALTHY: 1.0, UNHEALTHY: 0.0, UNKNOWN: -1.0}

    def __init__(self, sidecar: RuntimeView) -> None:
        self._sidecar = sidecar

    def collect(self) -> Iterable[GaugeMetricFamily]:
        fam = GaugeMetricFamily(
            "sidecar_upstream_health",
            "Upstream health: 1 healthy, 0 unhealthy (breaker not closed, or unreachable), "
            "-1 unknown (nothing known yet).",
            labels=["upstream"],
        )
        for name, health in upstream_health(self._sidecar).items():
            fam.add_metric([name], self._VALUES[health])
        yield fam
