"""Back-pressure for one asyncio connection, in both directions: :class:`FlowControl`.

Writing: asyncio calls ``pause_writing`` when a transport's write buffer passes its high-water
mark and ``resume_writing`` once it falls below the low one; a writer that finds
``write_paused`` set awaits :meth:`FlowControl.drain` before writing more. Reading: reading from
the peer is paused while at least one reason holds and resumes when the last one ends. Each
reason is a bit of ``_read_paused`` (:data:`BODY_WAITING` here; a connection may define more), so
the end of one reason never resumes reading that another still needs paused.

Both HTTP/1.1 connections are built on it: the app's (:mod:`sidecar.listeners.http_connection`)
and the upstream's (:mod:`sidecar.upstream.connection`), as aiohttp's server and client share
its ``BaseProtocol``.

Not here: body buffers and their water marks (each body stream decides when to pause and
resume), or how long a peer may take to read (a connection that bounds it adds the timeout).
"""

from __future__ import annotations

__all__ = ["BODY_WAITING", "FlowControl", "reading_set"]

import asyncio
from typing import Final

#: Reading is paused because a body buffered past its high-water mark waits for its reader.
BODY_WAITING: Final = 1


class FlowControl(asyncio.Protocol):
    """An asyncio Protocol that pauses its writers and its reading; subclasses set
    ``transport`` in ``connection_made``, ``closed`` when the transport is gone, and call
    :meth:`fail_drain` from ``connection_lost``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        #: the transport is gone, or going: nothing more is read or written.
        self.closed = False
        #: the peer is not reading fast enough: writers await :meth:`drain` before writing more.
        self.write_paused = False
        #: why reading is paused, one bit per reason (``0``: reading).
        self._read_paused = 0
        self._drain_waiter: asyncio.Future[None] | None = None

    # --- writing -----------------------------------------------------------------------------

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport's write buffer falls below its low-water mark."""
        if self.closed:
            raise self.closed_error()
        waiter = self._drain_waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._drain_waiter = None

    def closed_error(self) -> BaseException:
        """What a writer waiting in :meth:`drain` gets when the connection closes (each side
        names its own peer)."""
        return ConnectionResetError("connection closed")

    def fail_drain(self) -> None:
        """The connection closed: a writer waiting in :meth:`drain` gets :meth:`closed_error`."""
        w = self._drain_waiter
        if w is not None and not w.done():
            w.set_exception(self.closed_error())

    # --- reading -----------------------------------------------------------------------------

    def pause_reading(self, reason: int = BODY_WAITING) -> None:
        """Stop reading from the peer while ``reason`` holds."""
        held = self._read_paused
        if held & reason:
            return
        transport = self.transport
        if transport is None or self.closed:
            return
        self._read_paused = held | reason
        if not held:
            transport.pause_reading()

    def resume_reading(self, reason: int = BODY_WAITING) -> None:
        """``reason`` no longer holds: read again unless another reason still does."""
        held = self._read_paused
        if not held & reason:
            return  # the common case (a body read below its low-water mark): one test, no call
        transport = self.transport
        if transport is None or self.closed:
            return
        held &= ~reason
        self._read_paused = held
        if not held:
            transport.resume_reading()


def reading_set(transport: asyncio.Transport | None, pause: bool, paused: bool) -> bool:
    """Pause or resume reading ``transport`` so that it is paused exactly when ``pause``;
    ``paused`` is whether it is now. Returns whether it is paused after (unchanged when the
    transport is gone or closing). For connections that pause for one reason at a time (the
    HTTP/2 ones, which read in bounded turns)."""
    if transport is None or transport.is_closing() or pause == paused:
        return paused
    if pause:
        transport.pause_reading()
    else:
        transport.resume_reading()
    return pause
