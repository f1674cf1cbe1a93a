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
    from opentelemetry.trace import Tracer, TracerProvider

#: where the running sidecar publishes its tracing in ``resources`` when tracing is on (the
#: built-in ``sidecar.telemetry.tracing`` does, under this key, an object whose ``provider``
#: is its OpenTelemetry tracer provider)
TRACING = "tracing"


def plugin_tracer(resources: Mapping[str, Any], name: str) -> Tracer | None:
    """The sidecar's tracer for instrumentation scope ``name`` (your plugin's distribution),
    or ``None`` when tracing is off (then make no span at all). Call it when a filter is
    built, never per call."""
    live = resources.get(TRACING)
    provider: TracerProvider | None = getattr(live, "provider", None)
    if provider is None:
        return None
    return provider.get_tracer(name)
