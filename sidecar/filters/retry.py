"""``retry``: send a failed call again when that is safe, useful and affordable.

On the way back from the adapter, the outcome is classified by the upstream adapter's classifier
(``ctx.classify``: condition names such as ``connect-failure``, ``reset``, ``timeout``, ``503``).
A call is sent again only when every one of these holds, checked in this order:

1. an outcome condition is listed in ``retry.on``, and attempts are left (``retry.attempts``
   counts the first one);
2. repeating it is safe (:mod:`sidecar.resilience.idempotency`) and its body can be replayed
   (:mod:`sidecar.resilience.replay`: bodies up to ``retry.buffer``);
3. the wait fits the deadline: full-jitter backoff, or the upstream's ``Retry-After`` when it sent
   one (a ``Retry-After`` that ends past the deadline means no retry: its answer goes back);
4. the upstream's retry budget allows it (:mod:`sidecar.resilience.retry_budget`).

A response is retried only before this filter returns it, so never after any byte reached the
app; a response given up for a retry has its body closed, so its connection is not reused
mid-body. ``retry.per_try_timeout`` bounds each attempt (never past the overall deadline, which
the ``timeout`` filter above sets); an attempt it cuts ends with condition ``timeout``.

**gRPC** (routes of the ``grpc`` listener, chosen when the chain is composed), per gRFC A6:
conditions are the adapter's status-code names (``unavailable`` by default); HTTP's idempotency
rule does not apply (every gRPC call is a POST; a status such as UNAVAILABLE says the server did
not act on it, so the codes in ``retry.on`` are what makes a retry safe); the request messages are
kept as they are sent, boundaries intact (:class:`~sidecar.resilience.replay.MessageReplay`, up to
``retry.buffer``: a longer stream commits the call and is not retried); an answer with initial
metadata or a message has already reached the app's side of the call and is never retried, only
a trailers-only answer or an error is. The server's ``grpc-retry-pushback-ms`` trailing metadata
plays ``Retry-After``'s part (a malformed or negative one means no retry, as A6 says), and each
retry carries ``grpc-previous-rpc-attempts``.

Counted: ``sidecar_retries_total{condition}`` per retry, ``sidecar_retries_skipped_total{reason}``
per retryable failure not retried (``non_idempotent``, ``body_too_large``, ``deadline``,
``retry_after``, ``budget``); a retried call's access-log line says how many ``attempts`` it
made (:data:`ATTEMPTS`). Off (``enabled: false``, or one attempt without a per-try timeout): not
in the chain at all.
"""

from __future__ import annotations

__all__ = ["ATTEMPTS", "PREVIOUS_ATTEMPTS", "PUSHBACK", "SKIP_REASONS", "factory", "make_retry"]

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from ..api import RouteContext, SharedKey
from ..chain import Filter, Handler
from ..errors import SidecarError, UpstreamTimeout
from ..exchange import Exchange, Response, StashKey, discard
from ..grpc.wire import GRPC_LISTENER
from ..resilience.backoff import FullJitterBackoff, parse_retry_after
from ..resilience.deadlines import DeadlineWheel
from ..resilience.idempotency import IDEMPOTENT_METHODS
from ..resilience.replay import MessageReplay, make_replayable
from ..resilience.retry_budget import SlidingRetryBudget

#: attempts a call made, set only when it made more than one (the access log reads it).
ATTEMPTS: StashKey[int] = StashKey("retry.attempts")

#: why a retryable failure was not retried (``sidecar_retries_skipped_total{reason}``).
SKIP_REASONS = ("non_idempotent", "body_too_large", "deadline", "retry_after", "budget")

Sleep = Callable[[float], Awaitable[None]]

#: gRPC's ``Retry-After`` (gRFC A6): milliseconds, in the trailing metadata.
PUSHBACK = "grpc-retry-pushback-ms"
#: the count of earlier attempts gRPC puts on a retried call (gRFC A6).
PREVIOUS_ATTEMPTS = "grpc-previous-rpc-attempts"


#: The upstream's retry budget, whichever route the call took.
BUDGET: SharedKey[SlidingRetryBudget] = SharedKey("retry_budget")


def factory(ctx: RouteContext) -> Filter | None:
    return make_retry(ctx)


def make_retry(
    ctx: RouteContext,
    *,
    rand: Callable[[], float] = random.random,
    sleep: Sleep = asyncio.sleep,
    wall: Callable[[], float] = time.time,
) -> Filter | None:
    """The retry filter of one route; ``rand``, ``sleep`` and ``wall`` (the clock HTTP-dates are
    measured against) are for tests."""
    policy = ctx.upstream.retry
    if not policy.enabled or (policy.attempts == 1 and policy.per_try_timeout is None):
        return None
    attempts = policy.attempts
    per_try = policy.per_try_timeout
    on = frozenset(policy.on)
    non_idempotent = policy.non_idempotent
    limit = policy.buffer
    honor_retry_after = policy.honor_retry_after
    classify = ctx.classify
    backoff = FullJitterBackoff(policy.backoff.base, policy.backoff.max, rand)
    b = policy.budget
    # one budget per upstream, whichever route the call took (kept across reloads that leave
    # the budget's settings alone)
    budget = ctx.shared(BUDGET, b, lambda: SlidingRetryBudget(b.ratio, b.min_retries, b.window))
    labels = (ctx.upstream_name, ctx.route)
    wheel = DeadlineWheel()  # per-try timers (coarse: see sidecar.resilience.deadlines)
    retried = {c: ctx.metrics.retries.labels(*labels, c).inc for c in on}
    skipped = {r: ctx.metrics.retries_skipped.labels(*labels, r).inc for r in SKIP_REASONS}
    record_request = budget.record_request
    grpc = ctx.listener == GRPC_LISTENER

    def asked(response: Response) -> float | None:
        """Seconds the upstream asked to wait (negative: asked not to retry), ``None``: unsaid."""
        if grpc:
            trailers = response.trailers
            pushback = trailers.get(PUSHBACK) if trailers is not None else None
            if pushback is None:
                return None
            ms = pushback.strip()
            return int(ms) / 1000 if ms.isascii() and ms.isdigit() else -1.0
        value = response.headers.get("retry-after")
        return None if value is None else parse_retry_after(value, wall())

    def wait_before(
        exchange: Exchange, attempt: int, response: Response | None, blocked: str | None
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None``: no retry (counted why)."""
        if blocked is not None:
            skipped[blocked]()
            return None
        delay = backoff.delay(attempt)
        reason = "deadline"
        if honor_retry_after and response is not None:
            wait = asked(response)
            if wait is not None:
                if wait < 0:
                    skipped["retry_after"]()
                    return None
                delay, reason = wait, "retry_after"
        deadline = exchange.deadline
        if deadline is not None and asyncio.get_running_loop().time() + delay >= deadline:
            skipped[reason]()
            return None
        if not budget.try_retry():
            skipped["budget"]()
            return None
        return delay

    async def retry(exchange: Exchange, call_next: Handler) -> Response:
        record_request()
        # decided before the first attempt: a stream must be buffered before it is sent, or
        # left alone to be sent once (may_repeat inlined: this runs on every call)
        blocked: str | None = None
        body = exchange.body
        if not (
            non_idempotent
            or exchange.method in IDEMPOTENT_METHODS
            or "idempotency-key" in exchange.headers
        ):
            blocked = "non_idempotent"
        elif isinstance(body, bytes):
            if len(body) > limit:
                blocked = "body_too_large"
        elif not await make_replayable(exchange, limit):
            blocked = "body_too_large"
        # the first attempt; a success costs no more than this (the loop is a coroutine of its
        # own, entered only when the outcome has a condition)
        response: Response | None
        error: SidecarError | None
        try:
            if per_try is None:
                response = await call_next(exchange)
            else:
                response = await _bounded(call_next, exchange, per_try, wheel)
        except SidecarError as e:
            response, error = None, e
        else:
            if not classify(response, None):
                return response
            error = None
        return await again(exchange, call_next, blocked, response, error, None)

    async def retry_grpc(exchange: Exchange, call_next: Handler) -> Response:
        record_request()
        # no idempotency rule (see the module); the messages are kept as they are sent
        blocked: str | None = None
        replay: MessageReplay | None = None
        body = exchange.body
        if isinstance(body, bytes):
            if len(body) > limit:
                blocked = "body_too_large"
        else:
            replay = MessageReplay(body, limit)
            exchange.body = replay.attempt()
        response: Response | None
        error: SidecarError | None
        try:
            if per_try is None:
                response = await call_next(exchange)
            else:
                response = await _bounded(call_next, exchange, per_try, wheel)
        except SidecarError as e:
            response, error = None, e
        else:
            # a stream whose status is still to come classifies as a success: it is committed
            if not classify(response, None):
                return response
            error = None
        return await again(exchange, call_next, blocked, response, error, replay)

    async def again(
        exchange: Exchange,
        call_next: Handler,
        blocked: str | None,
        response: Response | None,
        error: SidecarError | None,
        replay: MessageReplay | None,
    ) -> Response:
        """The first attempt's outcome had a condition: retry while it is worth it."""
        attempt = 1
        while True:
            if replay is not None and blocked is None and not replay.replayable:
                blocked = "body_too_large"  # the app's stream outgrew the buffer
            conditions = classify(response, error)
            delay: float | None = None
            if conditions and attempt < attempts:
                matched = next((c for c in conditions if c in on), None)
                if matched is not None:
                    delay = wait_before(exchange, attempt, response, blocked)
                    if delay is not None:
                        retried[matched]()
            if delay is None:
                if error is not None:
                    raise error
                assert response is not None
                return response
            if response is not None:
                await discard(response)
            if delay > 0:
                await sleep(delay)
            attempt += 1
            exchange.stash[ATTEMPTS] = attempt
            if replay is not None:
                exchange.body = replay.attempt()
            if grpc:
                exchange.headers.set(PREVIOUS_ATTEMPTS, str(attempt - 1))
            response = error = None
            try:
                if per_try is None:
                    response = await call_next(exchange)
                else:
                    response = await _bounded(call_next, exchange, per_try, wheel)
            except SidecarError as e:
                error = e

    return retry_grpc if grpc else retry


async def _bounded(
    call_next: Handler, exchange: Exchange, per_try: float, wheel: DeadlineWheel
) -> Response:
    """One attempt bounded by ``per_try`` unless the overall deadline comes first (then the
    ``timeout`` filter's deadline alone fires, and the app gets its 504)."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    deadline = exchange.deadline
    if deadline is not None and deadline - now <= per_try:
        return await call_next(exchange)
    task = asyncio.current_task(loop)
    assert task is not None
    entry = wheel.add(loop, task, now + per_try)
    # the attempt sees its own, earlier deadline: filters below (the breaker) bound their waits
    # by it and can tell a per-try cut from the app going away
    exchange.deadline = now + per_try
    try:
        response = await call_next(exchange)
    except asyncio.CancelledError:
        # ours only if nothing else (the overall deadline, the app leaving) cancelled too
        if wheel.remove(entry) and task.uncancel() == 0:
            raise UpstreamTimeout(f"no response within per_try_timeout {per_try:g}s") from None
        raise
    except BaseException:
        if wheel.remove(entry):
            task.uncancel()
        raise
    finally:
        exchange.deadline = deadline
    if wheel.remove(entry):
        task.uncancel()
    return response
