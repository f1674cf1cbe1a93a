"""The circuit breaker of one upstream: a state machine over call outcomes, with its own clock.

Closed, it counts failures: ``consecutive_failures`` in a row trip it, and so does (when
``failure_ratio`` is set) that share of failures among the calls of the last ``window`` once there
were ``min_requests`` of them. Open, it refuses every call until ``open_for`` has passed. Then the
next call finds it half-open: up to ``half_open_requests`` trial calls go through at once (the rest
are refused); that many successes close it, one failure opens it again for twice as long as last
time, capped at ``max_open_for``.

Each call is tagged with the breaker's *generation* when admitted (it changes on every
transition), so an outcome that arrives after the state moved on (a slow call admitted while
closed that fails after the breaker opened) is ignored instead of counted twice or against the
wrong state.

The hot path is closed: :attr:`state` is read, :attr:`generation` is read, :meth:`success` sets a
counter to 0. The clock is read only on the failure paths, on open admissions and when a ratio
window is configured. What counts as failure, and the HTTP answer to a refusal, are not decided
here (:mod:`sidecar.filters.circuit_breaker`); nor is logging: transitions are reported to
``on_transition``.
"""

from __future__ import annotations

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "STATE_NAMES", "CircuitBreaker"]

import math
import time
from collections.abc import Callable
from typing import Any, Final

from ..config.policies import CircuitBreakerPolicy
from ..errors import CircuitOpen

#: states, as ``sidecar_circuit_state`` exports them.
CLOSED: Final = 0
OPEN: Final = 1
HALF_OPEN: Final = 2
STATE_NAMES: Final = ("closed", "open", "half-open")

#: buckets of the failure-ratio window: the window slides in steps of ``window / BUCKETS``.
BUCKETS: Final = 10

Transition = Callable[[str, str, str], None]

_RETRY_NOW: Final = (("retry-after", "1"),)


class _Window:
    """Calls and failures over the last ``span`` seconds, in ``BUCKETS`` rotating buckets."""

    __slots__ = ("calls", "failures", "_bucket", "_calls", "_failures", "_width")

    def __init__(self, span: float) -> None:
        self._width = span / BUCKETS
        self._calls = [0] * BUCKETS
        self._failures = [0] * BUCKETS
        self._bucket = 0  # index (time // width) of the newest bucket
        #: sums over the buckets, kept up to date so a check costs nothing.
        self.calls = 0
        self.failures = 0

    def add(self, now: float, failed: bool) -> None:
        b = int(now // self._width)
        if b != self._bucket:
            self._advance(b)
        i = b % BUCKETS
        self._calls[i] += 1
        self.calls += 1
        if failed:
            self._failures[i] += 1
            self.failures += 1

    def _advance(self, b: int) -> None:
        # empty the buckets that fell out of the window (all of them after a long quiet spell)
        for old in range(self._bucket + 1, min(b, self._bucket + BUCKETS) + 1):
            i = old % BUCKETS
            self.calls -= self._calls[i]
            self.failures -= self._failures[i]
            self._calls[i] = self._failures[i] = 0
        self._bucket = b

    def clear(self) -> None:
        self._calls = [0] * BUCKETS
        self._failures = [0] * BUCKETS
        self.calls = self.failures = 0


class CircuitBreaker:
    """One upstream's breaker. Not thread-safe: it lives on the event loop like the calls."""

    __slots__ = (
        "_clock",
        "_consecutive",
        "_max_open_for",
        "_on_transition",
        "_open_for",
        "_policy",
        "_reopen_at",
        "_threshold",
        "_trial_limit",
        "_trials_ok",
        "_trials_out",
        "_window",
        "generation",
        "state",
        "transitions",
        "upstream",
    )

    def __init__(
        self,
        upstream: str,
        policy: CircuitBreakerPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self.upstream = upstream
        self._policy = policy
        self._clock = clock
        self._on_transition = on_transition
        #: CLOSED, OPEN or HALF_OPEN.
        self.state = CLOSED
        #: changes on every transition; outcomes of calls admitted under another one are ignored.
        self.generation = 0
        #: transitions so far, by the state entered.
        self.transitions = {name: 0 for name in STATE_NAMES}
        self._threshold = policy.consecutive_failures
        self._consecutive = 0
        self._window = _Window(policy.window) if policy.failure_ratio is not None else None
        self._open_for = policy.open_for
        self._max_open_for = policy.max_open_for
        self._reopen_at = 0.0
        self._trial_limit = policy.half_open_requests
        self._trials_out = 0
        self._trials_ok = 0

    # --- admission -----------------------------------------------------------------------------

    def admit(self) -> int:
        """Admit a call while not closed (closed: read :attr:`generation` instead, it is free).

        Returns the generation to report the outcome with; raises
        :class:`~sidecar.errors.CircuitOpen` with ``Retry-After``: the whole seconds until it
        turns half-open (at least 1), or 1 while half-open with every trial slot taken.
        """
        if self.state == OPEN:
            now = self._clock()
            if now < self._reopen_at:
                wait = max(1, math.ceil(self._reopen_at - now))
                raise CircuitOpen(
                    f"circuit breaker of upstream {self.upstream!r} is open; "
                    f"trial calls in {wait}s",
                    headers=(("retry-after", str(wait)),),
                )
            self._move(HALF_OPEN, f"open time of {self._open_for:g}s elapsed")
        elif self.state == CLOSED:
            return self.generation
        if self._trials_out >= self._trial_limit:
            raise CircuitOpen(
                f"circuit breaker of upstream {self.upstream!r} is half-open and its trial "
                "calls are in progress",
                headers=_RETRY_NOW,
            )
        self._trials_out += 1
        return self.generation

    # --- outcomes --------------------------------------------------------------------------------

    def success(self, generation: int) -> None:
        """The call admitted under ``generation`` got an answer that is not a failure."""
        if generation != self.generation:
            return
        if self.state == CLOSED:
            self._consecutive = 0
            if self._window is not None:
                self._window.add(self._clock(), False)
        elif self.state == HALF_OPEN:
            self._trials_out -= 1
            self._trials_ok += 1
            if self._trials_ok >= self._trial_limit:
                self._move(CLOSED, f"{self._trials_ok} trial call(s) succeeded")

    def failure(self, generation: int, why: str) -> None:
        """The call admitted under ``generation`` failed (``why``: its condition, for the log)."""
        if generation != self.generation:
            return
        if self.state == CLOSED:
            self._consecutive += 1
            window = self._window
            if window is not None:
                window.add(self._clock(), True)
            if self._consecutive >= self._threshold:
                self._open(f"{self._consecutive} consecutive failures (last: {why})", False)
            elif window is not None and window.calls >= self._policy.min_requests:
                ratio = self._policy.failure_ratio
                assert ratio is not None
                if window.failures >= ratio * window.calls:
                    self._open(
                        f"{window.failures} of {window.calls} calls failed within "
                        f"{self._policy.window:g}s (last: {why})",
                        False,
                    )
        elif self.state == HALF_OPEN:
            self._open(f"trial call failed: {why}", True)

    def release(self, generation: int) -> None:
        """The call ended with no verdict on the upstream (cancelled, or the sidecar's own
        decision): a trial slot is freed, nothing is counted."""
        if generation == self.generation and self.state == HALF_OPEN:
            self._trials_out -= 1

    # --- transitions -------------------------------------------------------------------------

    def _open(self, reason: str, again: bool) -> None:
        if again:  # a failed trial: the upstream is still sick, stay away longer
            self._open_for = min(self._open_for * 2, self._max_open_for)
        self._reopen_at = self._clock() + self._open_for
        self._move(OPEN, reason)

    def _move(self, to: int, reason: str) -> None:
        was = self.state
        self.state = to
        self.generation += 1
        self._consecutive = 0
        self._trials_out = self._trials_ok = 0
        if to == CLOSED:
            self._open_for = self._policy.open_for
        if self._window is not None and to != HALF_OPEN:
            self._window.clear()  # a fresh start: what happened before the trip is history
        self.transitions[STATE_NAMES[to]] += 1
        if self._on_transition is not None:
            self._on_transition(STATE_NAMES[was], STATE_NAMES[to], reason)

    # --- views ---------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Live state for ``/upstreams``."""
        out: dict[str, Any] = {
            "state": STATE_NAMES[self.state],
            "consecutive_failures": self._consecutive,
            "trip_after": self._threshold,
            "open_for_s": self._open_for,
            "transitions": dict(self.transitions),
        }
        if self.state == OPEN:
            out["half_open_in_s"] = round(max(0.0, self._reopen_at - self._clock()), 3)
        elif self.state == HALF_OPEN:
            out["trials_in_flight"] = self._trials_out
            out["trials_succeeded"] = self._trials_ok
        if self._window is not None:
            out["window"] = {
                "seconds": self._policy.window,
                "calls": self._window.calls,
                "failures": self._window.failures,
                "trip_ratio": self._policy.failure_ratio,
                "min_requests": self._policy.min_requests,
            }
        return out

    def gauges(self) -> tuple[tuple[str, str, float], ...]:
        """Scrape-time gauges: ``sidecar_circuit_state`` (0 closed, 1 open, 2 half-open)."""
        return (
            (
                "sidecar_circuit_state",
                "Circuit breaker state by upstream: 0 closed, 1 open, 2 half-open.",
                float(self.state),
            ),
        )
