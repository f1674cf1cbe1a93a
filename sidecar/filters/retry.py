"""``retry``: send a failed call again when that is safe, useful and affordable.

On the way back from the adapter, the outcome is classified by the upstream adapter's classifier
(``ctx.classify``: condition names such as ``connect-failure``, ``reset``, ``timeout``, ``503``).
A call is sent again only when every one of these holds, checked in this order:

1. an outcome condition is listed in ``retry.on``, and attempts are left (``retry.attempts``
   counts the first one);
2. repeating it is safe (:mod:`sidecar.resilience.idempotency`; or as a plugin said for this
   call, :func:`sidecar.api.allow_retry`, read once before the first attempt) and its body can
   be replayed (:mod:`sidecar.resilience.replay`: bodies up to ``retry.buffer``);
3. the wait fits the deadline: full-jitter backoff, or the upstream's ``Retry-After`` when it sent
   one (a ``Retry-After`` that ends past the deadline means no retry: its answer goes back);
4. the upstream's retry budget allows it (:mod:`sidecar.resilience.retry_budget`).

A response is retried only before this filter returns it, so never after any byte reached the
app; a response given up for a retry has its body closed, so its connection is not reused
mid-body. ``retry.per_try_timeout`` bounds each attempt (never past the overall deadline, which
the ``timeout`` filter above sets; :mod:`sidecar.resilience.per_try`); an attempt it cuts ends
with condition ``timeout``.

**gRPC** (routes of a front that answers in gRPC terms, ``ctx.front.grpc``, chosen when the chain
is composed), per gRFC A6: conditions are the adapter's status-code names (``unavailable`` by
default); HTTP's idempotency rule does not apply (every gRPC call is a POST; a status such as
UNAVAILABLE says the server did not act on it, so the codes in ``retry.on`` are what makes a retry
safe); a body of whole messages (``ctx.front.whole_messages``) is kept as it is sent, boundaries
intact (:class:`~sidecar.resilience.replay.MessageReplay`, up to ``retry.buffer``: a longer
stream commits the call and is not retried); an answer with initial metadata or a message has
already reached the app's side of the call and is never retried, only a trailers-only answer or
an error is. The server's ``grpc-retry-pushback-ms`` trailing metadata plays ``Retry-After``'s
part (a malformed or negative one means no retry, as A6 says), and each retry carries
``grpc-previous-rpc-attempts``.

Counted: ``sidecar_retries_total{condition}`` per retry, ``sidecar_retries_skipped_total{reason}``
per retryable failure not retried (``non_idempotent``, ``body_too_large``, ``deadline``,
``retry_after``, ``budget``); a retried call's access-log line says how many ``attempts`` it
made (:data:`ATTEMPTS`). Off (``enabled: false``, or one attempt without a per-try timeout): not
in the chain at all.

How it reads: :func:`make_retry` builds the filter, or none; the filter's one loop makes every
attempt, the first included (a call that succeeds first time costs only that loop's first pass);
:class:`RetryGate` decides, between two attempts, whether the next one is made and after how
long, and readies the exchange for it; :class:`~sidecar.resilience.per_try.PerTryTimeout` bounds
each attempt.
"""

from __future__ import annotations

__all__ = ["ATTEMPTS", "PREVIOUS_ATTEMPTS", "PUSHBACK", "SKIP_REASONS", "factory", "make_retry"]

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Final

from ..api import RouteContext, SharedKey
from ..api.calls import RETRY_PERMIT
from ..chain import Filter, Handler
from ..errors import SidecarError
from ..exchange import Exchange, Headers, Response, StashKey, discard
from ..observing import Absorbing, Observing
from ..outcomes import classify_http
from ..resilience.backoff import FullJitterBackoff, parse_retry_after
from ..resilience.idempotency import IDEMPOTENT_METHODS
from ..resilience.per_try import PerTryTimeout
from ..resilience.replay import MessageReplay, make_replayable
from ..resilience.retry_budget import SlidingRetryBudget

#: attempts a call made, set only when it made more than one (the access log reads it).
ATTEMPTS: Final[StashKey[int]] = StashKey("retry.attempts")

#: why a retryable failure was not retried (``sidecar_retries_skipped_total{reason}``).
SKIP_REASONS: Final = ("non_idempotent", "body_too_large", "deadline", "retry_after", "budget")

Sleep = Callable[[float], Awaitable[None]]

#: gRPC's ``Retry-After`` (gRFC A6): milliseconds, in the trailing metadata.
PUSHBACK: Final = "grpc-retry-pushback-ms"
#: the count of earlier attempts gRPC puts on a retried call (gRFC A6).
PREVIOUS_ATTEMPTS: Final = "grpc-previous-rpc-attempts"


#: The upstream's retry budget, whichever route the call took.
BUDGET: Final[SharedKey[SlidingRetryBudget]] = SharedKey("retry_budget")


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
    gate = RetryGate(ctx, rand=rand, sleep=sleep, wall=wall)
    if policy.per_try_timeout is not None:
        # each attempt under its own timer: the filters inside run within that timer's frame
        return _attempts_filter(ctx, gate, PerTryTimeout(policy.per_try_timeout), None)
    # the observers right inside (the circuit breaker) run in this filter's frame when the
    # chain is composed (sidecar.chain.fuse): one coroutine frame fewer on every call
    return Absorbing(lambda inner: _attempts_filter(ctx, gate, None, inner))


def _attempts_filter(
    ctx: RouteContext, gate: RetryGate, timer: PerTryTimeout | None, inner: Observing | None
) -> Filter:
    """The filter: the body made replayable, then attempts until one's outcome is the call's,
    each passing ``inner``'s observers (the breaker) on its way. What it reads on every call is
    held in this closure's cells (cheaper than attributes)."""
    budget = gate.budget  # a method call on it is a direct one, compiled (a bound one is not)
    classify = ctx.classify
    # the HTTP classifier called by its name: a direct call, compiled (through a variable it is
    # a generic one)
    http = classify is classify_http
    policy = ctx.upstream.retry
    limit = policy.buffer
    # gRPC has no idempotency rule (see the module): the codes in retry.on make a retry safe
    any_method = policy.non_idempotent or ctx.front.grpc
    whole_messages = ctx.front.whole_messages

    async def retry(exchange: Exchange, call_next: Handler) -> Response:
        budget.record_request()
        # decided before the first attempt: a stream must be kept as it is sent, or left alone
        # to be sent once (may_repeat inlined: this runs on every call)
        blocked: str | None = None
        replay: MessageReplay | None = None
        body = exchange.body
        permit = exchange.peek(RETRY_PERMIT)  # a plugin's say on this call (api.allow_retry)
        if permit is None:
            permit = (
                any_method
                or exchange.method in IDEMPOTENT_METHODS
                or "idempotency-key" in exchange.headers
            )
        if not permit:
            blocked = "non_idempotent"
        elif isinstance(body, bytes):
            if len(body) > limit:
                blocked = "body_too_large"
        elif whole_messages:
            replay = MessageReplay(body, limit)
            exchange.body = replay.attempt()
        elif not await make_replayable(exchange, limit):
            blocked = "body_too_large"
        attempt = 1
        while True:
            response: Response | None
            error: SidecarError | None
            try:
                if inner is not None:
                    refused = inner.begin_all(exchange)
                    if refused is not None:
                        raise refused
                    try:
                        response = await call_next(exchange)
                    except BaseException as e:
                        raise inner.fail_all(exchange, e)  # noqa: B904 (e, or an observer's)
                    failed = inner.finish_all(exchange, response)
                    if failed is not None:
                        raise failed
                elif timer is None:
                    response = await call_next(exchange)
                else:
                    response = await timer.attempt(call_next, exchange)
            except SidecarError as e:
                conditions = classify(None, e)
                if not conditions:
                    raise  # no condition (a sidecar decision: an open breaker): never retried
                response, error = None, e
            else:
                # a success has no condition (nor has a gRPC stream whose status is still to
                # come: it is committed), and costs no more than this
                conditions = classify_http(response, None) if http else classify(response, None)
                if not conditions:
                    return response
                error = None
            delay = gate.delay(exchange, attempt, conditions, response, blocked, replay)
            if delay is None:
                if error is not None:
                    raise error
                assert response is not None
                return response
            attempt += 1
            await gate.ready(exchange, attempt, response, delay, replay)

    return retry


class RetryGate:
    """What happens between two attempts of a route's calls: whether the next one is made and
    after how long (a retry counted by its condition, a refusal by its reason), then the
    exchange readied for it."""

    __slots__ = (
        "attempts",
        "backoff",
        "budget",
        "grpc",
        "honor_asked",
        "on",
        "retried",
        "skipped",
        "sleep",
        "wall",
    )

    def __init__(
        self,
        ctx: RouteContext,
        *,
        rand: Callable[[], float],
        sleep: Sleep,
        wall: Callable[[], float],
    ) -> None:
        policy = ctx.upstream.retry
        self.attempts = policy.attempts
        self.on = frozenset(policy.on)
        self.backoff = FullJitterBackoff(policy.backoff.base, policy.backoff.max, rand)
        b = policy.budget
        # one budget per upstream, whichever route the call took (kept across reloads that leave
        # the budget's settings alone)
        self.budget = ctx.shared(
            BUDGET, b, lambda: SlidingRetryBudget(b.ratio, b.min_retries, b.window)
        )
        labels = (ctx.upstream_name, ctx.route)
        self.retried = {c: ctx.metrics.retries.labels(*labels, c).inc for c in self.on}
        self.skipped = {r: ctx.metrics.retries_skipped.labels(*labels, r).inc for r in SKIP_REASONS}
        self.honor_asked = policy.honor_retry_after
        self.grpc = ctx.front.grpc
        self.sleep = sleep
        self.wall = wall

    def delay(
        self,
        exchange: Exchange,
        attempt: int,
        conditions: tuple[str, ...],
        response: Response | None,
        blocked: str | None,
        replay: MessageReplay | None,
    ) -> float | None:
        """Seconds to wait before the attempt after ``attempt``, whose outcome had
        ``conditions``; ``None``: that outcome is the call's."""
        if attempt >= self.attempts:
            return None
        matched = next((c for c in conditions if c in self.on), None)
        if matched is None:
            return None
        if blocked is None and replay is not None and not replay.replayable:
            blocked = "body_too_large"  # the app's stream outgrew the buffer
        delay = self._affordable_wait(exchange, attempt, response, blocked)
        if delay is not None:
            self.retried[matched]()
        return delay

    def _affordable_wait(
        self, exchange: Exchange, attempt: int, response: Response | None, blocked: str | None
    ) -> float | None:
        """The wait before a retry that may be made, or ``None`` (counted why): ``blocked`` (set
        before the first attempt), the upstream asked not to, the deadline, the budget."""
        skipped = self.skipped
        if blocked is not None:
            skipped[blocked]()
            return None
        delay = self.backoff.delay(attempt)
        reason = "deadline"
        if self.honor_asked and response is not None:
            wait = self._asked(response)
            if wait is not None:
                if wait < 0:
                    skipped["retry_after"]()
                    return None
                delay, reason = wait, "retry_after"
        deadline = exchange.deadline
        if deadline is not None and asyncio.get_running_loop().time() + delay >= deadline:
            skipped[reason]()
            return None
        if not self.budget.try_retry():
            skipped["budget"]()
            return None
        return delay

    def _asked(self, response: Response) -> float | None:
        """Seconds the upstream asked to wait (negative: asked not to retry), ``None``: unsaid."""
        if self.grpc:
            return _pushback(response.trailers)
        value = response.headers.get("retry-after")
        return None if value is None else parse_retry_after(value, self.wall())

    async def ready(
        self,
        exchange: Exchange,
        attempt: int,
        failed: Response | None,
        delay: float,
        replay: MessageReplay | None,
    ) -> None:
        """Let go of the failed answer, wait ``delay``, and ready ``exchange`` to be sent as
        attempt number ``attempt``."""
        if failed is not None:
            await discard(failed)
        if delay > 0:
            await self.sleep(delay)
        exchange.stash[ATTEMPTS] = attempt
        if replay is not None:
            exchange.body = replay.attempt()
        if self.grpc:
            exchange.headers.set(PREVIOUS_ATTEMPTS, str(attempt - 1))


def _pushback(trailers: Headers | None) -> float | None:
    """Seconds from ``grpc-retry-pushback-ms``; ``-1``: negative or malformed, which gRFC A6
    reads as "do not retry"; ``None``: not sent."""
    pushback = trailers.get(PUSHBACK) if trailers is not None else None
    if pushback is None:
        return None
    ms = pushback.strip()
    return int(ms) / 1000 if ms.isascii() and ms.isdigit() else -1.0
