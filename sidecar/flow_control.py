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

Writes at the end of the loop's pass: a request sent upstream and a response written whole go
out with :meth:`FlowControl.write_later`. The first such write of a pass of the event loop goes
to the transport at once (a lone call waits for nothing); the ones after it in the same pass,
from any connection, wait until the loop has run that pass's callbacks and go out together
(:class:`WritePass`: one loop callback per pass). A loaded proxy reads many connections in one
pass, and its peers, woken by the first write, then find the rest waiting instead of being woken
again for each. Watching a pass for a second write costs that loop callback, so a quiet proxy,
whose passes carry one write each, watches one write in :data:`WATCHED_ONE_IN` and writes the
rest at once; a watched pass that saw more than one write makes the next watched too. Writing
every call's bytes at the pass's end instead would cost a lone call its wait for the rest of the
pass (20 µs of latency at one connection, measured). Nothing may overtake a held write: every
other write, the half-close and the close of such a connection first call
:meth:`FlowControl.flush_writes`.

Not here: body buffers and their water marks (each body stream decides when to pause and
resume), or how long a peer may take to read (a connection that bounds it adds the timeout).
"""

from __future__ import annotations

__all__ = ["BODY_WAITING", "FlowControl", "WritePass", "reading_set", "write_pass"]

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
        #: bytes given to :meth:`write_later` this pass, not yet to the transport
        self.unsent: list[bytes] | None = None
        #: the loop's pass they go out with (set by a subclass once connected; ``None``:
        #: :meth:`write_later` writes at once)
        self.write_pass: WritePass | None = None

    # --- writing -----------------------------------------------------------------------------

    def write_later(self, data: bytes) -> None:
        """Write ``data`` now if it is the first write of the loop's pass, else at the pass's
        end with the others (see the module); never before what this connection wrote first."""
        unsent = self.unsent
        if unsent is not None:
            unsent.append(data)
            return
        wp = self.write_pass
        if wp is not None and wp.started:
            # a write after the pass's first: it waits for the pass's end
            self.unsent = [data]
            wp.waiting.append(self)
            return
        # the pass's first write goes at once (a lone call waits for nothing)
        transport = self.transport
        if transport is not None:
            transport.write(data)
        if wp is None:
            return
        if wp.busy or wp.unwatched == 0:
            # the pass is watched: the writes after this one in it wait for its end
            wp.loop.call_soon(wp.run)
            wp.started = True
            wp.unwatched = WATCHED_ONE_IN - 1
        else:
            wp.unwatched -= 1

    def flush_writes(self) -> None:
        """Hand what :meth:`write_later` holds to the transport now (the pass's end, or any
        other use of the transport, which must not overtake it)."""
        unsent = self.unsent
        if unsent is None:
            return
        self.unsent = None
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return  # gone: what it would have carried is lost with it, as a write's would be
        if len(unsent) == 1:
            transport.write(unsent[0])
        else:
            transport.writelines(unsent)

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


class WritePass:
    """One event loop's pass, for :meth:`FlowControl.write_later` (see the module): its first
    write schedules the pass's end, which writes what the connections after it hold."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: list[FlowControl] = []
        #: this pass is watched: its first write happened, the ones after it wait for :meth:`run`
        self.started = False
        #: the last watched pass had writes after its first: every pass is watched
        self.busy = False
        #: quiet: writes left, each the first of a pass, before a pass is watched again
        self.unwatched = 0

    def run(self) -> None:
        self.started = False
        waiting = self.waiting
        self.busy = bool(waiting)
        self.waiting = []
        for conn in waiting:
            try:
                conn.flush_writes()
            except Exception:
                # a transport that refuses the write (closing under it): that connection is
                # done, the others are still written
                transport = conn.transport
                if transport is not None:
                    transport.abort()


#: While passes carry one write each (a lone call at a time), one write in this many starts a
#: watched pass: the end of a watched pass costs a loop callback, which the others save.
WATCHED_ONE_IN: Final = 16

#: the pass of the loop a connection was last made on (one loop per process; a test's new
#: loop gets a new one)
_PASSES: Final[list[WritePass]] = []


def write_pass(loop: asyncio.AbstractEventLoop) -> WritePass:
    """The :class:`WritePass` of ``loop`` (called once per connection)."""
    if _PASSES and _PASSES[0].loop is loop:
        return _PASSES[0]
    wp = WritePass(loop)
    _PASSES[:] = [wp]
    return wp


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
