"""One HTTP/2 stream's state (RFC 9113 section 5.1) as the connection keeps it: which sides
are still open, its two flow-control windows, and whether its headers went by.

Only open and half-closed streams are kept (idle ones are implied by the highest id seen,
closed ones are dropped); how a recently closed stream ended is kept a while longer as one
small ``int`` (the ``CLOSED_*`` codes), since a late frame is answered by it. Not here: the
frames (:mod:`.inbound`, :mod:`.connection`).
"""

from __future__ import annotations

from typing import Final

#: how a stream ended, remembered for the late frames that may still come on it
CLOSED_BY_END: Final = 0
CLOSED_BY_RESET_SENT: Final = 1
CLOSED_BY_RESET_RECEIVED: Final = 2
#: how many closed streams are remembered (oldest forgotten first)
REMEMBERED_CLOSED_STREAMS: Final = 4096


class Stream:
    """An open or half-closed stream."""

    stream_id: int
    #: opened by us (a client's request)
    outbound: bool
    #: what we may still send on it (may go negative after a SETTINGS change)
    send_window: int
    #: what the peer may still send on it
    recv_window: int
    #: the receive window's full size (what acknowledgements reopen it to)
    recv_max: int
    #: bytes the caller consumed and no WINDOW_UPDATE returned yet
    unacked: int
    send_closed: bool
    recv_closed: bool
    #: the request (server) or final response (client) was received: the next block is trailers
    head_received: bool
    #: we sent our headers: the next block we send is trailers
    head_sent: bool

    def __init__(self, stream_id: int, outbound: bool, send_window: int, recv_window: int) -> None:
        self.stream_id = stream_id
        self.outbound = outbound
        self.send_window = send_window
        self.recv_window = recv_window
        self.recv_max = recv_window
        self.unacked = 0
        self.send_closed = False
        self.recv_closed = False
        self.head_received = False
        self.head_sent = False


def window_increment(window: int, max_window: int, processed: int) -> int:
    """The WINDOW_UPDATE increment owed once ``processed`` bytes were consumed, or -1 while
    too few were to be worth a frame (``h2``'s rule: half the window, or a quarter of it,
    at most 1024 bytes, once the window is shut). 0: consumed, but the window is full."""
    if processed >= max_window // 2 or (window <= 0 and processed > min(1024, max_window // 4)):
        return max(0, min(processed, max_window - window))
    return -1
