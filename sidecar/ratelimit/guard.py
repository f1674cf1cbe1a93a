"""The rules every rate-limit backend gets: a time budget, fail open or closed, outage handling.

:class:`GuardedBackend` wraps one backend instance. Each decision is bounded by the backend's
``timeout`` (20 ms by default) on the client side; a backend that raises or runs past it gives
no decision, and the caller applies ``on_error`` (``allow``: fail open, the default; ``deny``:
503 ``ratelimit_unavailable``). Every call decided that way counts in
``sidecar_ratelimit_backend_errors_total{backend}``.

A failing backend is not asked again for :data:`RETRY_INTERVAL` (so a dead Redis is not hammered
and calls do not each pay the budget); then one call at a time probes it while the others keep
being decided by ``on_error``, until a probe succeeds. A call that runs out of budget while the
backend answered other calls in the meantime is only late, not an outage (a sidecar whose own
event loop is saturated sees that): it is decided by ``on_error`` and counted, and the backend
stays in use. The outage is logged once when it starts
and once when it ends. Decision round-trip times go to
``sidecar_ratelimit_backend_duration_seconds{backend}``.
"""

from __future__ import annotations

__all__ = ["RETRY_INTERVAL", "GuardedBackend"]

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..api import Decision, Limit, RateLimitBackend
from ..telemetry.metrics import Metrics

log = logging.getLogger("sidecar.ratelimit")

#: After a failure, the backend is left alone this long (seconds) before one call probes it.
RETRY_INTERVAL = 1.0


class GuardedBackend:
    """One live backend with its budget, its outage state and its metric children."""

    def __init__(
        self,
        backend: RateLimitBackend,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        self.backend = backend
        self.name = backend.name
        self.budget = backend.config.timeout
        self.fail_open = backend.config.on_error == "allow"
        self._clock = clock
        self._retry_interval = retry_interval
        self._errors = metrics.ratelimit_backend_errors.labels(self.name)
        self._observe = metrics.ratelimit_backend_duration.labels(self.name).observe
        #: outage state: ``_down_since`` is None while the backend answers
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._probing = False
        self._unchecked = 0  # calls decided by on_error during the current outage
        self._answered_at = 0.0  # perf_counter() when the backend last answered

    @property
    def available(self) -> bool:
        return self._down_since is None

    async def start(self, bound: float = 2.0) -> None:
        """Start the backend (at most ``bound`` seconds). A backend that cannot start begins in
        an outage (logged once) instead of stopping the sidecar: global limits follow
        ``on_error`` until it answers."""
        try:
            async with asyncio.timeout(bound):
                await self.backend.start()
        except Exception as e:
            self._failed(e, count=False)

    async def decide(self, key: str, limit: Limit) -> Decision | None:
        """The backend's decision, or ``None`` when it has none in time (apply ``on_error``)."""
        probe = False
        if self._down_since is not None:
            if self._probing or self._clock() < self._retry_at:
                self._unchecked += 1
                self._errors.inc()
                return None
            self._probing = probe = True
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.budget):
                decision = await self.backend.decide(key, limit)
        except Exception as e:  # TimeoutError (the budget) or whatever the backend raised
            self._observe(time.perf_counter() - start)
            if isinstance(e, TimeoutError) and self._answered_at > start and not probe:
                # the backend answered other calls meanwhile: it is up, this call was late
                # (typically this sidecar's own loop is saturated). Undecided, but no outage.
                self._errors.inc()
                return None
            self._failed(e)
            return None
        finally:
            if probe:
                self._probing = False
        self._answered_at = done = time.perf_counter()
        self._observe(done - start)
        if self._down_since is not None:
            self._recovered()
        return decision

    def _failed(self, error: Exception, count: bool = True) -> None:
        now = self._clock()
        if count:
            self._errors.inc()
            self._unchecked += 1
        self._retry_at = now + self._retry_interval
        if self._down_since is not None:
            return  # logged when the outage began
        self._down_since = now
        reason = (
            "no answer in time"
            if isinstance(error, TimeoutError)
            else f"{type(error).__name__}: {error}"
        )
        log.warning(
            f"rate-limit backend {self.name!r} unavailable: global limits "
            + ("not enforced (on_error: allow)" if self.fail_open else "refuse calls (503)")
            + " until it answers again",
            extra={"fields": {"backend": self.name, "error": reason}},
        )

    def _recovered(self) -> None:
        since = self._down_since or self._clock()
        log.info(
            f"rate-limit backend {self.name!r} available again: global limits enforced",
            extra={
                "fields": {
                    "backend": self.name,
                    "outage_s": round(self._clock() - since, 3),
                    "calls_unchecked": self._unchecked,
                }
            },
        )
        self._down_since = None
        self._unchecked = 0

    def describe(self) -> dict[str, Any]:
        return {
            **self.backend.describe(),
            "name": self.name,
            "state": "available" if self._down_since is None else "unavailable",
            "timeout_s": self.budget,
            "on_error": "allow" if self.fail_open else "deny",
        }
