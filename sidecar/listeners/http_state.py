"""What an app connection of the HTTP/1.1 listener is doing, and why it stops reading.

:class:`ConnectionState` decides which of the listener's timers applies to a connection (the
listener's ticker reads it, :mod:`sidecar.listeners.http`); the reader moves it from ``IDLE`` to
``HEAD`` when a request begins (:mod:`sidecar.listeners.http_request`), the connection's worker to
``BUSY`` and back, closing to ``LINGER`` (:mod:`sidecar.listeners.http_connection`). The reasons
to pause reading are the connection's own, next to the flow control's ``BODY_WAITING``.

Not here: the timers themselves, or the transitions.
"""

from __future__ import annotations

__all__ = ["BUSY", "HEAD", "IDLE", "INPUT_CLOSED", "LINGER", "QUEUE_FULL", "ConnectionState"]

from enum import IntEnum
from typing import Final

from ..flow_control import BODY_WAITING


class ConnectionState(IntEnum):
    """What a connection is doing, which decides the listener's timer that applies to it."""

    #: waiting for a request: the idle timeout
    IDLE = 0
    #: receiving a request head: the header timeout
    HEAD = 1
    #: answering: the route's own timeout, none of the listener's
    BUSY = 2
    #: closing, reading only to discard what the app still sends: the linger
    LINGER = 3


# The states as module constants, which the hot path reads as globals: ``ConnectionState.BUSY``
# looks the member up on the enum class on every access (~75 ns), an IntEnum member compares as
# an int.
IDLE: Final = ConnectionState.IDLE
HEAD: Final = ConnectionState.HEAD
BUSY: Final = ConnectionState.BUSY
LINGER: Final = ConnectionState.LINGER

#: Reading from the app pauses, besides for a waiting body (``BODY_WAITING``), while more than
#: ``MAX_PIPELINED`` requests are queued, and once input is closed (refused or past the last
#: request; not while lingering, which reads to discard).
QUEUE_FULL: Final = BODY_WAITING << 1
INPUT_CLOSED: Final = BODY_WAITING << 2
