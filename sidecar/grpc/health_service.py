"""``grpc.health.v1.Health`` on the gRPC port: the sidecar's overall status and one entry per
upstream, so an app (or a probe) can ask about the service it is about to call.

Entries, all read from :mod:`sidecar.health` and the sidecar's ``state`` (a
:class:`~sidecar.api.RuntimeView`):

- ``""`` (the overall status): SERVING while the sidecar is ready, NOT_SERVING while it starts or
  drains; ``sidecar.v1.Admin`` the same;
- each upstream by name, and each gRPC service it serves (``upstreams.<u>.services``): SERVING
  when healthy, NOT_SERVING when unhealthy (breaker not closed, or unreachable) or when the
  sidecar is not ready, UNKNOWN when nothing is known yet (no breaker and an adapter that does not
  track connectivity).

``Check`` and ``List`` compute the answer when asked, so they are never stale. ``Watch`` streams
are fed by a poll every :data:`POLL_INTERVAL` seconds (only while someone watches): upstream
health has no change event to subscribe to (a breaker trips on the request path, which must not
pay for a notification), and a poll of a few dictionary lookups is cheaper than one. An upstream a
reload removed disappears: ``Check`` answers NOT_FOUND and its watchers see SERVICE_UNKNOWN, as
the protocol says. At drain every entry turns NOT_SERVING and every ``Watch`` stream ends (after
that last message) with UNAVAILABLE, so a long-lived watch never holds the drain up.

Not grpcio-health-checking's ``aio.HealthServicer``: it cannot forget a service (a removed
upstream) and has no ``List``. It is not a grpcio servicer either: :meth:`HealthService.check`,
:meth:`~HealthService.statuses` and :meth:`~HealthService.watch` answer in plain values and end
a call with :class:`~.control.ServiceAbort`, and each server of the gRPC port binds them
(:mod:`.service_table`), so the HTTP/2 front answers health checks without grpcio or protobuf.
Not here: what makes an upstream healthy (:mod:`sidecar.health`), the messages
(:mod:`.health_codec`).
"""

from __future__ import annotations

__all__ = ["MAX_WATCHERS", "POLL_INTERVAL", "HealthService"]

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..health import HEALTHY, UNHEALTHY, upstream_health
from .control import ServiceAbort

if TYPE_CHECKING:
    from ..api import RuntimeView

#: seconds between two looks at upstream health while a ``Watch`` stream is open.
POLL_INTERVAL = 0.5
#: ``Watch`` streams open at once; past it a new one is refused (RESOURCE_EXHAUSTED).
MAX_WATCHERS = 1000

OVERALL = ""
ADMIN_SERVICE = "sidecar.v1.Admin"

#: ``HealthCheckResponse.ServingStatus`` (health.proto)
UNKNOWN, SERVING, NOT_SERVING, SERVICE_UNKNOWN = 0, 1, 2, 3
#: the gRPC status codes a health call ends with, when it does not answer
NOT_FOUND, RESOURCE_EXHAUSTED, UNAVAILABLE = 5, 8, 14


class HealthService:
    """The health of one sidecar (``Check``, ``Watch``, ``List``), and its poll."""

    def __init__(self, sidecar: RuntimeView, *, poll_interval: float = POLL_INTERVAL) -> None:
        self._sidecar = sidecar
        self._interval = poll_interval
        self._status: dict[str, int] = {}
        # replaced on every change: a watcher waits on the one it saw before reading a status
        self._changed = asyncio.Event()
        self._watchers = 0
        self._draining = False
        self._poller: asyncio.Task[None] | None = None

    # --- state -------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute every entry; wake the watchers if any changed. Frozen once draining."""
        if self._draining:
            return
        sidecar = self._sidecar
        if sidecar.state in ("draining", "stopped"):
            self.drain()
            return
        ready = sidecar.state == "ready"
        overall = SERVING if ready else NOT_SERVING
        status: dict[str, int] = {OVERALL: overall, ADMIN_SERVICE: overall}
        health = upstream_health(sidecar)
        for name, up in sidecar.config.upstreams.items():
            h = health.get(name)
            if not ready or h == UNHEALTHY:
                one = NOT_SERVING
            else:
                one = SERVING if h == HEALTHY else UNKNOWN
            status[name] = one
            for service in up.services:
                status[service] = one
        self._publish(status)

    def drain(self) -> None:
        """Every entry NOT_SERVING from now on; open ``Watch`` streams send it and end."""
        if self._draining:
            return
        self._draining = True
        self._publish(dict.fromkeys(self._status or {OVERALL: 0}, NOT_SERVING))
        if self._poller is not None and self._poller is not asyncio.current_task():
            self._poller.cancel()  # (the poll itself ends on its own: it sees _draining)

    def _publish(self, status: dict[str, int]) -> None:
        if status == self._status and not self._draining:
            return
        self._status = status
        self._changed.set()
        self._changed = asyncio.Event()

    # --- the poll that feeds Watch -----------------------------------------------------------

    def start(self) -> None:
        """Start the poll (a task this object owns; :meth:`aclose` ends it)."""
        self.refresh()
        if self._poller is None and not self._draining:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name="sidecar-grpc-health-poll"
            )

    async def _poll(self) -> None:
        while not self._draining:
            await asyncio.sleep(self._interval)
            # nobody watching: Check computes its own answer, so there is nothing to keep fresh;
            # the drain is noticed all the same
            if self._watchers or self._sidecar.state != "ready":
                self.refresh()

    async def aclose(self) -> None:
        """Stop the poll and wait for it (after the server stopped)."""
        self.drain()
        if self._poller is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    # --- grpc.health.v1.Health ---------------------------------------------------------------

    def check(self, service: str) -> int:
        """``Check``: the status of ``service`` now; NOT_FOUND for a name with no entry."""
        self.refresh()
        status = self._status.get(service)
        if status is None:
            raise ServiceAbort(
                NOT_FOUND,
                f"no health entry {service!r}: ask for an upstream's name, a gRPC service "
                "it serves (upstreams.<name>.services) or the overall status ('')",
            )
        return status

    def statuses(self) -> dict[str, int]:
        """``List``: every entry and its status now."""
        self.refresh()
        return dict(self._status)

    async def watch(self, service: str) -> AsyncIterator[int]:
        """``Watch``: the status of ``service`` now, then each change; UNAVAILABLE once the
        sidecar drains (after NOT_SERVING was sent)."""
        if self._watchers >= MAX_WATCHERS:
            raise ServiceAbort(
                RESOURCE_EXHAUSTED,
                f"{MAX_WATCHERS} health watches are open already; use Check, or close one",
            )
        self._watchers += 1
        try:
            self.refresh()  # the first answer is current, not one poll old
            last: int | None = None
            while True:
                changed = self._changed
                status = self._status.get(service, SERVICE_UNKNOWN)
                if status != last:
                    yield status
                    last = status
                if self._draining:
                    raise ServiceAbort(UNAVAILABLE, "the sidecar is draining")
                await changed.wait()
        finally:
            self._watchers -= 1
