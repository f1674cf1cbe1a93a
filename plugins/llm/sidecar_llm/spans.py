"""A span per provider attempt, when the sidecar traces.

Each attempt is a CLIENT span named ``chat <model>`` (``embeddings <model>``), child of the
sidecar's own span of the call to the upstream (read from the ``traceparent`` the sidecar writes
into the call's headers just above the adapter), so an unsampled call makes spans that do not
record. Attributes follow OpenTelemetry's GenAI conventions where they exist:
``gen_ai.system`` (``openai``/``anthropic``), ``gen_ai.operation.name``,
``gen_ai.request.model`` (the group the app named), ``gen_ai.response.model`` (the deployment's
model), ``gen_ai.usage.input_tokens``/``output_tokens``; and ``sidecar.llm.provider``,
``sidecar.llm.group`` (the group that was tried), ``sidecar.llm.attempt``, ``error.type`` (the
failure reason). A stream's span ends with the stream. Never a prompt, an answer or a key.

Imported only by a sidecar that traces (the adapter asks for it when it has a tracer).
"""

from __future__ import annotations

__all__ = ["attempt_span", "end_failed", "end_ok"]

from typing import TYPE_CHECKING

from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from sidecar import Exchange

    from .router import Target
    from .translate.streams import Usage

_PROPAGATOR = TraceContextTextMapPropagator()


def attempt_span(
    tracer: Tracer,
    exchange: Exchange,
    target: Target,
    kind: str,
    endpoint: str,
    group: str,
    attempt: int,
) -> Span:
    carrier = {}
    traceparent = exchange.headers.get("traceparent")
    if traceparent is not None:
        carrier["traceparent"] = traceparent
    operation = "embeddings" if endpoint == "embeddings" else "chat"
    return tracer.start_span(
        f"{operation} {target.model}",
        context=_PROPAGATOR.extract(carrier),
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.system": kind,
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": group,
            "gen_ai.response.model": target.model,
            "sidecar.llm.provider": target.provider,
            "sidecar.llm.group": target.group,
            "sidecar.llm.attempt": attempt,
        },
    )


def end_ok(span: Span, usage: Usage | None) -> None:
    if usage is not None:
        span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
    span.end()


def end_failed(span: Span, reason: str, status: int | None) -> None:
    span.set_attribute("error.type", reason)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    span.set_status(Status(StatusCode.ERROR))
    span.end()
