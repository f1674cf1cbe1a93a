"""The plugin's spans, when the sidecar traces: one PRODUCER span per publish and one CONSUMER
span per delivery to the app.

Names and attributes follow OpenTelemetry's messaging conventions: ``<topic> publish`` and
``<topic> process``; ``messaging.system`` (the backend: ``redis``, ``rabbitmq``, ``mqtt``,
``kafka``), ``messaging.destination.name`` (the topic), ``messaging.message.id`` (the
CloudEvents ``id``), ``messaging.operation.type``, ``messaging.consumer.group.name``, and
``sidecar.pubsub.attempt`` (which delivery of the message this is). A publish span is a child
of the sidecar's span of the call (the ``traceparent`` the sidecar wrote into the call's
headers) and ends once the broker confirmed, with an error status when it did not; the event
carries its context, unless the app set a ``traceparent`` of its own. A delivery span is a
child of the context the event carries, and the HTTP call to the app carries the delivery
span's context, so the app's own spans go under it. Never data or a header value.

Imported only by a sidecar that traces.
"""

from __future__ import annotations

__all__ = ["end", "process_span", "publish_span", "traceparent_of"]

from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

_PROPAGATOR = TraceContextTextMapPropagator()


def _parent(traceparent: object) -> dict[str, str]:
    return {} if traceparent is None else {"traceparent": str(traceparent)}


def publish_span(tracer: Tracer, system: str, topic: str, traceparent: str | None) -> Span:
    """A PRODUCER span for one publish, child of the call's ``traceparent``."""
    return tracer.start_span(
        f"{topic} publish",
        context=_PROPAGATOR.extract(_parent(traceparent)),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": system,
            "messaging.destination.name": topic,
            "messaging.operation.type": "publish",
        },
    )


def process_span(
    tracer: Tracer,
    system: str,
    topic: str,
    group: str,
    message_id: str,
    traceparent: object,
    attempt: int,
) -> Span:
    """A CONSUMER span for one delivery, child of the context the event carries."""
    return tracer.start_span(
        f"{topic} process",
        context=_PROPAGATOR.extract(_parent(traceparent)),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": system,
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": group,
            "messaging.message.id": message_id,
            "messaging.operation.type": "process",
            "sidecar.pubsub.attempt": attempt,
        },
    )


def traceparent_of(span: Span) -> str | None:
    """The W3C ``traceparent`` naming ``span`` (``None`` when it has no valid context)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
    return carrier.get("traceparent")


def end(span: Span, failure: str | None = None, description: str | None = None) -> None:
    """End ``span``: ok, or failed with ``error.type`` = ``failure`` (a short fixed word)."""
    if failure is not None:
        span.set_attribute("error.type", failure)
        span.set_status(Status(StatusCode.ERROR, description))
    span.end()
