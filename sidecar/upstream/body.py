"""A response body streaming from an upstream connection, with back-pressure both ways.

:class:`UpstreamBody` is the ``AsyncIterator[bytes]`` the listener relays to the app. The
connection feeds it; past ``BODY_HIGH_WATER`` buffered bytes it pauses reading from the upstream
and resumes below ``BODY_LOW_WATER`` as the app catches up, so a slow app never makes the sidecar
hold a whole body. A body that stalls mid-stream for ``BODY_IDLE_TIMEOUT`` is cut. Not here:
parsing (:mod:`sidecar.upstream.connection`).
"""

from __future__ import annotations

__all__ = ["BODY_HIGH_WATER", "BODY_IDLE_TIMEOUT", "BODY_LOW_WATER", "UpstreamBody"]

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

from ..errors import SidecarError, UpstreamTimeout
from ..waiter import new_future

if TYPE_CHECKING:
    from .connection import UpstreamConnection

#: Response-body bytes buffered before reading from the upstream pauses (resumes below LOW).
BODY_HIGH_WATER: Final = 256 * 1024
BODY_LOW_WATER: Final = 64 * 1024
#: A response body that stalls this long mid-stream is cut (Envoy's stream idle timeout). Long
#: enough for server-sent events with sparse keep-alive comments.
BODY_IDLE_TIMEOUT = 300.0  # not Final: a test shortens it


class UpstreamBody:
    """A response body streaming from the upstream. An ``AsyncIterator[bytes]``."""

    __slots__ = ("_conn", "_error", "_waiter", "chunks", "eof", "size")

    def __init__(self, conn: UpstreamConnection) -> None:
        #: the connection while the body is still arriving (``None`` once complete or failed).
        self._conn: UpstreamConnection | None = conn
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self._error: SidecarError | None = None
        self._waiter: asyncio.Future[None] | None = None

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > BODY_HIGH_WATER and self._conn is not None:
            self._conn.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        self.eof = True
        self._conn = None  # the connection went back to the pool; buffered chunks stay here
        self._wake()

    def fail(self, error: SidecarError) -> None:
        if self._error is None:  # the first reason is the true one
            self._error = error
        self._conn = None
        self._wake()

    def _stalled(self) -> None:
        conn = self._conn
        self.fail(UpstreamTimeout(f"upstream body stalled for {BODY_IDLE_TIMEOUT:g}s"))
        if conn is not None:
            conn.abort()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self.chunks:
            if self.eof:
                raise StopAsyncIteration
            if self._error is not None:
                raise self._error  # what did arrive was handed over first: the app sees a cut
            loop = asyncio.get_running_loop()
            self._waiter = new_future(loop)
            # only a wait that really blocks pays for a timer (reading is not paused here)
            timer = loop.call_later(BODY_IDLE_TIMEOUT, self._stalled)
            try:
                await self._waiter
            finally:
                timer.cancel()
                self._waiter = None
        data = self.chunks.popleft()
        self.size -= len(data)
        if self.size < BODY_LOW_WATER and self._conn is not None:
            self._conn.resume_reading()
        return data

    async def aclose(self) -> None:
        """The app went away before the end: the connection cannot be reused."""
        conn = self._conn
        if conn is not None and not self.eof:
            self._conn = None
            conn.abort()
