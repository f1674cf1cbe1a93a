"""One app call to a model group: the attempts, failover, and the answer the app gets.

The router's plan is tried in order. An attempt fails over (the next deployment is tried) on a
connect error, a timeout, 408, 409, 429, 5xx or Anthropic's 529, and on a stream that breaks or
reports an error *before its first content event*; any other provider 4xx is the app's answer
(in the front's shape), since another provider would refuse the same request. A deployment the
request cannot be translated for is skipped; when every one was, the app gets 400 naming the
field.

Streams are held until the provider's first content event (:mod:`.streaming`), so a failure up
to there falls over invisibly. Once content reached the app, a failure ends its stream with an
error event in the front's format (OpenAI: a ``data: {"error": ...}`` event, no ``[DONE]``;
Anthropic: ``event: error``), never a silent truncation.

Every answer carries ``x-sidecar-llm-provider``, ``-deployment`` (the provider's model),
``-attempts`` (attempts sent) and ``-fallbacks`` (how far down the fallback chain the answering
group is: 0 for the group the app named, also when its deployments were all cooling down and
skipped). Usage is counted (metrics, cost, token limits) for every answer, streamed or not.
"""

from __future__ import annotations

__all__ = ["call"]

import asyncio
import logging

from sidecar import Exchange, Headers, Response

from .call_state import CallSpec, Upstream, account, failure_of, log, log_fields
from .dialects import json_response, usage_of
from .providers import ProviderFailure
from .relays import relay_for
from .streaming import hold
from .translate.errors import Untranslatable
from .translate.streams import ProviderStreamError


async def call(up: Upstream, spec: CallSpec, exchange: Exchange) -> Response:
    dialect = spec.dialect
    plan, wait = up.router.plan(spec.group)
    if not plan:
        return dialect.error(
            503, f"every deployment of {spec.group!r} is cooling down", retry_after=wait
        )
    attempts = 0
    depth = 0  # how far down the fallback chain the last attempt was
    refused: Untranslatable | None = None
    last: ProviderFailure | None = None
    loop = asyncio.get_running_loop()
    for target in plan:
        client = up.clients[target.provider]
        if spec.endpoint == "embeddings" and client.kind != "openai":
            refused = refused or Untranslatable("model", f"{target.provider} has no embeddings")
            continue
        try:
            request = dialect.provider_request(
                client.kind, spec.body, target.model, spec.stream, up.options.default_max_tokens
            )
        except Untranslatable as e:
            refused = refused or e
            up.metrics.failovers.labels(up.name, spec.group, "untranslatable").inc()
            continue
        budget = client.provider.timeout
        if exchange.deadline is not None:
            budget = min(budget, exchange.deadline - loop.time())
            if budget <= 0:
                break
        attempts += 1
        depth = up.router.depth(spec.group, target.group)
        headers = Headers(
            [
                ("x-sidecar-llm-provider", target.provider),
                ("x-sidecar-llm-deployment", target.model),
                ("x-sidecar-llm-attempts", str(attempts)),
                ("x-sidecar-llm-fallbacks", str(depth)),
            ]
        )
        span = None
        if spec.tracer is not None:
            from . import spans  # OpenTelemetry: only in a sidecar that traces

            span = spans.attempt_span(
                spec.tracer, exchange, target, client.kind, spec.endpoint, spec.group, attempts
            )
        try:
            async with asyncio.timeout(budget):
                response = await client.post(spec.endpoint, request)
                if spec.stream:
                    relay = relay_for(dialect.name, client.kind, target.model, spec.include_usage)
                    held = await hold(
                        up, spec, target, client, response, relay, headers, span, exchange.deadline
                    )
                    if held is None:
                        raise ProviderFailure("stream", "the stream ended before any content")
                else:
                    answer = await client.read_json(response)
        except asyncio.CancelledError:
            if span is not None:
                spans.end_failed(span, "cancelled", None)
            raise
        except (TimeoutError, ProviderFailure, ProviderStreamError) as e:
            failure = failure_of(e, target)
            up.metrics.attempts.labels(up.name, target.provider, target.model, failure.reason).inc()
            if span is not None:
                spans.end_failed(span, failure.reason, failure.status)
            if not failure.failover:
                refusal = dialect.error(
                    failure.status or 502,
                    client.scrub(failure.message, failure.status),
                    type_=failure.error_type if client.kind == dialect.name else None,
                )
                for name, value in headers:
                    refusal.headers.set(name, value)
                return refusal
            up.router.failed(target, failure.retry_after)
            up.metrics.failovers.labels(up.name, spec.group, failure.reason).inc()
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "llm attempt failed, trying the next deployment",
                    extra={"fields": log_fields(up, spec, target, failure)},
                )
            last = failure
            continue
        up.router.succeeded(target)
        up.metrics.attempts.labels(up.name, target.provider, target.model, "ok").inc()
        if spec.stream:
            assert held is not None  # a stream without content raised above
            return held
        usage = usage_of(client.kind, answer)
        if span is not None:
            spans.end_ok(span, usage)
        if usage is not None:
            await account(up, spec, target, usage)
        try:
            converted = dialect.app_answer(client.kind, answer, target.model)
        except (ValueError, KeyError, TypeError, AttributeError):  # Untranslatable included
            # the provider answered (and was paid): not worth another attempt, but no 500 either
            log.warning(
                "llm answer could not be converted", extra={"fields": {"upstream": up.name}}
            )
            return dialect.error(502, "the provider's answer could not be converted")
        return json_response(200, converted, headers)
    if last is None:
        if refused is not None:
            return dialect.error(400, f"{refused.field}: {refused.reason}", param=refused.field)
        failed = dialect.error(504, "no time left for an attempt")
    else:
        status = last.status or (504 if last.reason == "timeout" else 502)
        if status > 599:  # no status an app's client knows
            status = 502
        message = f"every deployment failed; the last: {last.reason}"
        retry_after = last.retry_after
        if retry_after is not None:  # what the app is told is bounded like the cooldown
            retry_after = min(retry_after, up.options.cooldown.max_retry_after)
        failed = dialect.error(status, message, retry_after=retry_after)
    failed.headers.set("x-sidecar-llm-attempts", str(attempts))
    failed.headers.set("x-sidecar-llm-fallbacks", str(depth))
    return failed
