"""``timeout``: the call's overall deadline (15 s by default, all attempts included).

Sets ``exchange.deadline`` (loop time) for the filters and adapter below, which bound their own
waits by it (retry backoff, per-try timeouts), and cancels the work below when it passes: the app
gets 504 ``upstream_timeout``. It covers the call up to the response head; a streaming body is
bounded by idle timeouts.

The app may ask for a shorter deadline with ``x-sidecar-timeout: <duration>`` (``250ms``, ``2s``,
``1m``, or a number of seconds such as ``0.5``): the shorter of it and the upstream's ``timeout``
wins, as does a deadline already on the exchange (a gRPC ``grpc-timeout``, an outer filter's).
The header is the sidecar's: it is removed and never forwarded; a malformed value is refused
with 400 ``bad_request`` rather than silently ignored (the app meant something by it).

Not here: per-attempt timeouts (``retry.per_try_timeout`` in :mod:`sidecar.filters.retry`, the
adapter's ``response_header_timeout``).
"""

from __future__ import annotations

__all__ = ["TIMEOUT_HEADER", "factory", "parse_timeout_header"]

import asyncio
import re
from typing import Final, cast

from ..api import RouteContext
from ..chain import Filter
from ..errors import BadRequest, UpstreamTimeout
from ..exchange import Exchange, Response
from ..observing import Observer, Observing
from ..resilience.deadlines import Deadline, DeadlineWheel
from ..waiter import RunningLoop

#: the app's own deadline for one call (never forwarded).
TIMEOUT_HEADER: Final = "x-sidecar-timeout"
_VALUE: Final = re.compile(r"^([0-9]{1,9}(?:\.[0-9]{1,9})?)(ms|s|m)?$")
_UNIT: Final = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0}


def parse_timeout_header(value: str) -> float | None:
    """Seconds from an ``x-sidecar-timeout`` value, ``None`` if malformed or not above 0."""
    m = _VALUE.match(value.strip())
    if m is None:
        return None
    seconds = float(m.group(1)) * _UNIT[m.group(2)]
    return seconds if seconds > 0 else None


def _app_deadline(exchange: Exchange, now: float) -> float:
    """The app's deadline from its header(s) (the shortest if sent twice); removes them."""
    shortest = None
    for value in exchange.headers.get_all(TIMEOUT_HEADER):
        seconds = parse_timeout_header(value)
        if seconds is None:
            err = BadRequest(
                f"malformed {TIMEOUT_HEADER}: expected a duration like 250ms or 2s, "
                f"got {value[:40]!r}"
            )
            # the request itself was framed correctly: the app's connection stays usable
            err.close_connection = False
            raise err
        if shortest is None or seconds < shortest:
            shortest = seconds
    exchange.headers.remove(TIMEOUT_HEADER)
    assert shortest is not None  # called only when the header is there
    return now + shortest


def factory(ctx: RouteContext) -> Filter:
    # one coarse timer for the route's calls instead of an asyncio.timeout each (4 µs a call);
    # an observer (sidecar.observing), fused with the filters around it into one frame
    return Observing((_Deadlines(ctx.upstream.timeout, DeadlineWheel()),))


class _Deadlines(Observer):
    """Each call's deadline registered as it enters (the registration kept on the exchange),
    removed as it leaves; a call cancelled for it leaves as ``UpstreamTimeout`` (504), raised
    here for the filters outside."""

    def __init__(self, budget: float, wheel: DeadlineWheel) -> None:
        self.budget = budget
        self.wheel = wheel
        #: the loop the last call ran on, found once (see ``sidecar.waiter.RunningLoop``)
        self.running = RunningLoop()

    def begin(self, exchange: Exchange) -> None:
        running = self.running
        task = running.task()
        assert task is not None  # a call runs in a task
        loop = running.loop
        assert loop is not None  # found with the task
        now = loop.time()
        deadline = now + self.budget
        if exchange.deadline is not None and exchange.deadline < deadline:
            deadline = exchange.deadline  # a shorter deadline from the caller wins
        if exchange.headers.get(TIMEOUT_HEADER) is not None:  # a plain loop, no generator
            deadline = min(deadline, _app_deadline(exchange, now))
        exchange.deadline = deadline
        entry = self.wheel.add(loop, task, deadline)
        entry.seconds = deadline - now
        exchange._deadline_entry = entry  # one timeout filter per chain: one entry per call

    def _leave(self, exchange: Exchange) -> Deadline:
        entry = exchange._deadline_entry
        exchange._deadline_entry = None
        return cast(Deadline, entry)  # begin ran for this call

    def ok(self, exchange: Exchange, resp: Response) -> None:
        # the deadline may have fired as the answer came: its cancellation is taken back
        self.wheel.leave(self._leave(exchange))

    def error(self, exchange: Exchange, e: BaseException) -> None:
        entry = self._leave(exchange)
        # ours only if the deadline fired and nothing else (the app leaving) cancelled too
        if self.wheel.leave(entry, isinstance(e, asyncio.CancelledError)):
            raise UpstreamTimeout(
                f"no response from upstream within {round(max(entry.seconds, 0.0), 3):g}s"
            ) from None
