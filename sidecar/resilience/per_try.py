"""The per-try timeout: one attempt of a call bounded by its own deadline, earlier than the call's.

A retried call has an overall deadline (set by the ``timeout`` filter) and, with
``retry.per_try_timeout``, each attempt has a shorter one of its own, so one stuck upstream
instance costs that much and not the whole call. An attempt the per-try deadline cuts ends with
:class:`~sidecar.errors.UpstreamTimeout` (condition ``timeout``, which the retry filter may
retry); when the overall deadline comes first, this timer stands aside and only the overall one
fires. Cancellations are told apart as :mod:`.deadlines` explains: the cut is ours only when
nothing else (the overall deadline, the app going away) cancelled the attempt too.

Not here: whether the cut attempt is tried again (:mod:`sidecar.filters.retry`).
"""

from __future__ import annotations

__all__ = ["PerTryTimeout"]

import asyncio

from ..chain import Handler
from ..errors import UpstreamTimeout
from ..exchange import Exchange, Response
from ..waiter import RunningLoop
from .deadlines import DeadlineWheel


class PerTryTimeout:
    """Bounds each attempt of a route's calls by ``seconds`` (one timer wheel per route)."""

    __slots__ = ("_running", "_wheel", "seconds")

    def __init__(self, seconds: float, wheel: DeadlineWheel | None = None) -> None:
        self.seconds = seconds
        # coarse timers: see sidecar.resilience.deadlines
        self._wheel = wheel if wheel is not None else DeadlineWheel()
        self._running = RunningLoop()  # not a getpid() per attempt

    async def attempt(self, call_next: Handler, exchange: Exchange) -> Response:
        """``call_next(exchange)``, cut after ``seconds`` unless the overall deadline comes
        first (then the ``timeout`` filter's deadline alone fires, and the app gets its 504)."""
        per_try = self.seconds
        running = self._running
        task = running.task()
        assert task is not None  # an attempt runs in the call's task
        loop = running.loop
        assert loop is not None  # found with the task
        now = loop.time()
        deadline = exchange.deadline
        if deadline is not None and deadline - now <= per_try:
            return await call_next(exchange)
        wheel = self._wheel
        entry = wheel.add(loop, task, now + per_try)
        # the attempt sees its own, earlier deadline: filters below (the breaker) bound their
        # waits by it and can tell a per-try cut from the app going away
        exchange.deadline = now + per_try
        try:
            response = await call_next(exchange)
        except BaseException as e:
            # ours only if nothing else (the overall deadline, the app leaving) cancelled too
            if wheel.leave(entry, isinstance(e, asyncio.CancelledError)):
                raise UpstreamTimeout(f"no response within per_try_timeout {per_try:g}s") from None
            raise
        finally:
            exchange.deadline = deadline
        wheel.leave(entry)
        return response
