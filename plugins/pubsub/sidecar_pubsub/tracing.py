"""Where the plugin finds the sidecar's tracer: :class:`LiveTracer`.

The adapter is built before the sidecar's tracing exists, and the subscriptions' lifespan is
entered before the tracing lifespan publishes it (the built-in one is registered last). So the
lifespan hands the adapter the sidecar's ``resources`` once, and the tracer is looked up there
(``plugin_tracer``) when a publish or a delivery first asks, then kept. With tracing off the
answer is ``None``: one dictionary look-up, no span, and OpenTelemetry is never imported. Not
here: the spans themselves (:mod:`.spans`).
"""

from __future__ import annotations

__all__ = ["SCOPE", "LiveTracer"]

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sidecar import plugin_tracer

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

#: the instrumentation scope of the plugin's spans
SCOPE = "sidecar-pubsub"


class LiveTracer:
    """The running sidecar's tracer for :data:`SCOPE`, or ``None`` while tracing is off."""

    def __init__(self) -> None:
        self._resources: Mapping[str, Any] | None = None
        self._tracer: Tracer | None = None

    def attach(self, resources: Mapping[str, Any]) -> None:
        """Read the tracer from ``resources`` (the running sidecar's) from now on."""
        self._resources = resources
        self._tracer = None

    def get(self) -> Tracer | None:
        if self._tracer is None and self._resources is not None:
            self._tracer = plugin_tracer(self._resources, SCOPE)
        return self._tracer
