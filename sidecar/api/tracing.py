"""A plugin's own spans: the running sidecar's tracer, when tracing is on.

The sidecar traces with a provider of its own (never OpenTelemetry's process-global one), so a
plugin that wants spans of its own (an adapter's attempts at a backend of its own choosing) asks
for that provider's tracer here, from ``RouteContext.resources`` when its filter is composed.
Parent its spans on the W3C ``traceparent`` the sidecar writes into the call's headers for the
upstream attempt (the ``upstream_span`` filter sets it just above the adapter), and the sampling
decision made for the call carries over: an unsampled call's spans do not record.
"""

from __future__ import annotations

__all__ = ["plugin_tracer"]

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer


def plugin_tracer(resources: Mapping[str, Any], name: str) -> Tracer | None:
    """The sidecar's tracer for instrumentation scope ``name`` (your plugin's distribution),
    or ``None`` when tracing is off (then make no span at all). Call it when a filter is
    built, never per call."""
    from ..telemetry.tracing import RESOURCE, Tracing  # not loaded with the API: tracing is off

    live = resources.get(RESOURCE)
    if not isinstance(live, Tracing):
        return None
    return live.provider.get_tracer(name)
