"""One app call to a model group: the attempts, failover, and the answer the app gets.

The router's plan is tried in order. An attempt fails over (the next deployment is tried) on a
connect error, a timeout, 408, 409, 429, 5xx or Anthropic's 529, and on a stream that breaks or
reports an error *before its first content event*; any other provider 4xx is the app's answer
(in the front's shape), since another provider would refuse the same request. A deployment the
request cannot be translated for is skipped; when every one was, the app gets 400 naming the
field.

Streams are held until the provider's first content event (text or tool data): the events before
it are kept, so a failure up to there falls over invisibly. Once content reached the app, a
failure ends its stream with an error event in the front's format (OpenAI: a ``data:
{"error": ...}`` event, no ``[DONE]``; Anthropic: ``event: error``), never a silent truncation.

Every answer carries ``x-sidecar-llm-provider``, ``-deployment`` (the provider's model),
``-attempts`` (attempts sent) and ``-fallbacks`` (how far down the fallback chain the answering
group is: 0 for the group the app named, also when its deployments were all cooling down and
skipped). Usage is counted
(metrics, cost, token limits) for every answer, streamed or not.
"""

from __future__ import annotations

__all__ = ["CallSpec", "Upstream", "call"]

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sidecar import Exchange, Headers, Response

from .config import LLMOptions
from .dialects import Dialect, json_response, usage_of
from .limits import GroupLimiter
from .metrics import LLMMetrics
from .providers import ProviderClient, ProviderFailure
from .relays import Relay, relay_for
from .router import Router, Target
from .translate.errors import Untranslatable
from .translate.sse import SSEParser
from .translate.streams import ProviderStreamError, Usage

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger("sidecar.plugin.llm")


@dataclass
class Upstream:
    """What every call to one ``llm`` upstream shares (built with its handler)."""

    name: str
    options: LLMOptions
    router: Router
    clients: dict[str, ProviderClient]
    metrics: LLMMetrics
    #: tasks accounting streamed usage after the app's stream ended (owned by the adapter)
    tasks: set[asyncio.Task[None]]


@dataclass
class CallSpec:
    """One app call: which front, endpoint and group, and its request."""

    dialect: Dialect
    endpoint: str  # chat, embeddings, messages
    group: str
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    limiter: GroupLimiter | None
    limit_key: str
    #: the sidecar's tracer (``None``: tracing is off, no span is made)
    tracer: Tracer | None = None


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
                    held = await _hold(
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
            failure = _failure(e, target)
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
                    extra={"fields": _fields(up, spec, target, failure)},
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
            await _account(up, spec, target, usage)
        return json_response(200, dialect.app_answer(client.kind, answer, target.model), headers)
    if last is None:
        if refused is not None:
            return dialect.error(400, f"{refused.field}: {refused.reason}", param=refused.field)
        failed = dialect.error(504, "no time left for an attempt")
    else:
        status = last.status or (504 if last.reason == "timeout" else 502)
        message = f"every deployment failed; the last: {last.reason}"
        failed = dialect.error(status, message, retry_after=last.retry_after)
    failed.headers.set("x-sidecar-llm-attempts", str(attempts))
    failed.headers.set("x-sidecar-llm-fallbacks", str(depth))
    return failed


def _failure(error: BaseException, target: Target) -> ProviderFailure:
    if isinstance(error, ProviderFailure):
        return error
    if isinstance(error, ProviderStreamError):
        return ProviderFailure("stream", f"the stream failed: {error.error_type}")
    return ProviderFailure("timeout", f"no answer from {target.provider!r} in time")


def _fields(up: Upstream, spec: CallSpec, target: Target, f: ProviderFailure) -> dict[str, Any]:
    return {
        "upstream": up.name,
        "group": spec.group,
        "provider": target.provider,
        "model": target.model,
        "reason": f.reason,
        "status": f.status,
    }


async def _account(up: Upstream, spec: CallSpec, target: Target, usage: Usage) -> None:
    up.metrics.used(up.name, spec.group, target, usage, up.options.prices.get(target.model))
    if spec.limiter is not None:
        await spec.limiter.charge(spec.limit_key, usage.input_tokens + usage.output_tokens)


async def _hold(
    up: Upstream,
    spec: CallSpec,
    target: Target,
    client: ProviderClient,
    response: Any,
    relay: Relay,
    headers: Headers,
    span: Span | None,
    deadline: float | None,
) -> Response | None:
    """Read the provider's stream until its first content event (or its end), then return the
    app's response: what was held, then the rest as it comes. ``None`` when the stream ended
    without either; raises what broke it."""
    started = asyncio.get_running_loop().time()
    chunks = client.chunks(response)
    parser = SSEParser(up.options.max_response_bytes)
    held: list[bytes] = []
    committed = False
    broken: ProviderStreamError | None = None
    try:
        async for raw in chunks:
            for event in parser.feed(raw):
                try:
                    out, content = relay.feed(event)
                except ProviderStreamError as e:
                    if not committed:
                        raise
                    broken = e  # content of this batch goes first, then the error event
                    break
                held.extend(out)
                committed = committed or content or relay.done
            if committed:
                ttft = asyncio.get_running_loop().time() - started
                up.metrics.ttft.labels(up.name, target.provider, target.model).observe(ttft)
                headers.set("content-type", "text/event-stream; charset=utf-8")
                headers.set("cache-control", "no-cache")
                body = _rest(
                    up, spec, target, client, chunks, parser, relay, held, broken, span, deadline
                )
                return Response(200, headers, body, length=None)
        return None
    except ValueError as e:  # the parser's bound
        raise ProviderFailure("protocol", "the provider sent an oversized event") from e
    finally:
        if not committed:
            await chunks.aclose()


async def _rest(
    up: Upstream,
    spec: CallSpec,
    target: Target,
    client: ProviderClient,
    chunks: AsyncGenerator[bytes, None],
    parser: SSEParser,
    relay: Relay,
    held: list[bytes],
    broken: ProviderStreamError | None,
    span: Span | None,
    deadline: float | None,
) -> AsyncIterator[bytes]:
    """The app's stream after commit: what was held, then each event as it comes; a failure
    ends it with the front's error event."""
    idle = client.provider.timeout
    loop = asyncio.get_running_loop()
    try:
        yield b"".join(held)
        held.clear()
        if broken is not None:
            raise broken
        while not relay.done:
            # silent for a whole attempt's timeout, or past the call's deadline: cut
            wait = idle if deadline is None else min(idle, deadline - loop.time())
            try:
                async with asyncio.timeout(wait):
                    raw = await anext(chunks)
            except StopAsyncIteration:
                raise ProviderFailure("stream", "the provider's stream ended early") from None
            out: list[bytes] = []
            try:
                events = parser.feed(raw)
            except ValueError as e:  # the parser's bound
                raise ProviderFailure("protocol", "the provider sent an oversized event") from e
            for event in events:
                out.extend(relay.feed(event)[0])
            if out:
                yield b"".join(out)
    except (TimeoutError, ProviderFailure, ProviderStreamError) as e:
        failure = _failure(e, target)
        up.metrics.attempts.labels(up.name, target.provider, target.model, "cut").inc()
        log.warning(
            "llm stream failed after content: the app got an error event",
            extra={"fields": _fields(up, spec, target, failure)},
        )
        yield spec.dialect.stream_error(f"the provider's stream failed: {failure.reason}")
    finally:
        await chunks.aclose()
        usage = relay.usage
        if span is not None:
            from . import spans

            if relay.done:
                spans.end_ok(span, usage)
            else:
                spans.end_failed(span, "cut", None)
        if usage is not None:
            # accounted off the app's stream: it may be closing because the app went away
            task = asyncio.get_running_loop().create_task(_account(up, spec, target, usage))
            up.tasks.add(task)
            task.add_done_callback(up.tasks.discard)
