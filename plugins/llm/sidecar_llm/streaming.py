"""A streamed answer: held until the provider's first content event, then relayed.

:func:`hold` reads the provider's stream until its first content event (text or tool data, as
the relay says) or its end, keeping what it converted; any failure up to there is the attempt's,
so the caller falls over invisibly. It then returns the app's response, whose body is what was
held followed by :func:`relay_rest`: each event as it comes; a break, an error event, a provider
silent for its ``timeout`` or the call's deadline passing ends it with the front's error event,
never a silent truncation. The usage is accounted (off the app's stream) and the attempt's span
ended when the stream ends, however it ends.
"""

from __future__ import annotations

__all__ = ["hold"]

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from sidecar import Headers, Response

from .call_state import CallSpec, Upstream, account, failure_of, log, log_fields
from .providers import ProviderClient, ProviderFailure
from .relays import Relay
from .router import Target
from .translate.sse import SSEEvent, SSEParser
from .translate.streams import ProviderStreamError

if TYPE_CHECKING:
    from opentelemetry.trace import Span


def _events(parser: SSEParser, raw: bytes) -> list[SSEEvent]:
    try:
        return parser.feed(raw)
    except ValueError as e:  # the parser's bound
        raise ProviderFailure("protocol", "the provider sent an oversized event") from e


def _feed(relay: Relay, event: SSEEvent) -> tuple[list[bytes], bool]:
    """The relay's output for one event; an event it cannot convert is the provider's error."""
    try:
        return relay.feed(event)
    except ProviderStreamError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ProviderStreamError("api_error", "an event could not be converted") from e


async def hold(
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
    held_bytes = 0
    committed = False
    broken: ProviderStreamError | None = None
    try:
        async for raw in chunks:
            for event in _events(parser, raw):
                try:
                    out, content = _feed(relay, event)
                except ProviderStreamError as e:
                    if not committed:
                        raise
                    broken = e  # content of this batch goes first, then the error event
                    break
                held.extend(out)
                held_bytes += sum(len(b) for b in out)
                committed = committed or content or relay.done
                if not committed and held_bytes > up.options.max_response_bytes:
                    # events without content (pings...) are held in memory: bounded
                    raise ProviderFailure("protocol", "the provider sent too much before content")
            if committed:
                ttft = asyncio.get_running_loop().time() - started
                up.metrics.ttft.labels(up.name, target.provider, target.model).observe(ttft)
                headers.set("content-type", "text/event-stream; charset=utf-8")
                headers.set("cache-control", "no-cache")
                body = relay_rest(
                    up, spec, target, client, chunks, parser, relay, held, broken, span, deadline
                )
                return Response(200, headers, body, length=None)
        return None
    finally:
        if not committed:
            await chunks.aclose()


async def relay_rest(
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
            for event in _events(parser, raw):
                out.extend(_feed(relay, event)[0])
            if out:
                yield b"".join(out)
    except (TimeoutError, ProviderFailure, ProviderStreamError) as e:
        failure = failure_of(e, target)
        up.metrics.attempts.labels(up.name, target.provider, target.model, "cut").inc()
        log.warning(
            "llm stream failed after content: the app got an error event",
            extra={"fields": log_fields(up, spec, target, failure)},
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
            task = asyncio.get_running_loop().create_task(account(up, spec, target, usage))
            up.tasks.add(task)
            task.add_done_callback(up.tasks.discard)
