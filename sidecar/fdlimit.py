"""Open file handles: the limit raised at start, connection caps sized from it, exhaustion told.

Every app connection holds a handle, and every call in flight usually one more toward its
upstream. Run out, and ``accept()`` fails: asyncio stops accepting on the port for a second at a
time, uvloop (libuv) accepts and closes each new connection, and either way every port (admin
and reload included) goes quiet with nothing in the log. So:

- :func:`raise_soft_limit` lifts the soft ``RLIMIT_NOFILE`` to the hard one at start-up (as
  Go's runtime and nginx's ``worker_rlimit_nofile`` do): 1024 is a shell default, not a budget;
- :func:`connection_cap` sizes each data listener's connection cap from that limit, leaving a
  reserve for the admin port, upstream connections, config and secret files, logs, Redis and the
  exporters; a listener at its cap closes a new connection at once and counts it, so the
  process never reaches the limit through its listeners;
- :class:`Exhaustion` logs "accept failed: too many open files" (or whichever limit was hit)
  once per episode and counts every occurrence, wherever one is seen (the loop's accept, an
  upstream connect).

:class:`ConnectionCap` is what a listener asks when it registers a connection. Not here: the
listeners' own bookkeeping of their connections.
"""

from __future__ import annotations

__all__ = [
    "ConnectionCap",
    "Exhaustion",
    "connection_cap",
    "raise_soft_limit",
    "reserve",
]

import errno
import logging
import resource
import time
from collections.abc import Callable

log = logging.getLogger("sidecar")

#: A limit reported as unlimited is taken as this (the kernel's usual ``nr_open``).
UNLIMITED = 1_048_576
#: Handles kept out of every listener's cap (at most; a quarter of a small limit).
RESERVE = 256
#: The smallest cap a listener gets, however small the limit.
MIN_CAP = 16
#: errno values that mean "out of handles" (process, system) or out of socket memory.
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: An episode ends once no exhaustion was seen for this long; the next one is logged again.
EPISODE_GAP = 10.0


def raise_soft_limit() -> tuple[int, int]:
    """Raise the soft open-files limit to the hard one; ``(before, after)``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # a hard limit above the kernel's nr_open
            return soft, soft
        return soft, target
    return soft, soft


def open_files_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED if soft == resource.RLIM_INFINITY else soft


def reserve(limit: int) -> int:
    """Handles no listener may take: :data:`RESERVE`, or a quarter of a small limit."""
    return min(RESERVE, limit // 4)


def connection_cap(limit: int, listeners: int) -> int:
    """The default connection cap of each of ``listeners`` data listeners under ``limit``.

    Half of what the reserve leaves goes to app connections (the other half to the upstream
    connections their calls hold), shared evenly by the listeners.
    """
    budget = (limit - reserve(limit)) // 2
    return max(MIN_CAP, budget // max(1, listeners))


class Exhaustion:
    """Counts running out of handles and logs it once per episode."""

    def __init__(
        self, count: Callable[[str], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._count = count
        self._clock = clock
        self._last = -EPISODE_GAP - 1.0

    def seen(self, where: str, error: OSError) -> None:
        """Record one failure ``error`` at ``where`` (``accept``, ``upstream connect``)."""
        self._count(where)
        now = self._clock()
        first = now - self._last > EPISODE_GAP
        self._last = now
        if first:
            log.error(
                f"{where} failed: {error.strerror or error}",
                extra={
                    "fields": {
                        "errno": errno.errorcode.get(error.errno or 0, str(error.errno)),
                        "open_files_limit": open_files_limit(),
                        "hint": "raise the hard limit (ulimit -Hn, the container runtime's "
                        "nofile) or lower the listeners' max_connections",
                    }
                },
            )

    @staticmethod
    def is_exhaustion(error: BaseException) -> bool:
        return isinstance(error, OSError) and error.errno in EXHAUSTED


class ConnectionCap:
    """A listener's connection cap: admits or refuses a new connection, counts and logs refusals.

    Refusals are counted each time and logged once per episode; an episode ends when the
    listener is back under 90 % of its cap.
    """

    def __init__(self, listener: str, limit: int, count: Callable[[], None]) -> None:
        self.listener = listener
        #: app connections open at once; the listener's owner may set it before it starts.
        self.limit = limit
        self._count = count
        self._at_limit = False

    def admit(self, open_now: int) -> bool:
        """Whether one more connection may join the ``open_now`` already open."""
        if open_now < self.limit:
            return True
        self._count()
        if not self._at_limit:
            self._at_limit = True
            log.warning(
                "connection limit reached: new app connections are closed at once",
                extra={"fields": {"listener": self.listener, "max_connections": self.limit}},
            )
        return False

    def closed(self, open_now: int) -> None:
        """A connection closed, ``open_now`` remain."""
        if self._at_limit and open_now < self.limit * 0.9:
            self._at_limit = False
