"""A request body streaming in from the app, with back-pressure: :class:`RequestBody`.

The listener feeds it what llhttp parses; the handler (usually the HTTP adapter, pumping it to the
upstream) iterates it. Past ``BODY_HIGH_WATER`` buffered bytes the listener stops reading from the
app's socket, and starts again once the handler drained it below ``BODY_LOW_WATER``, so a slow
upstream slows the app down instead of filling the sidecar's memory.

``Expect: 100-continue`` is answered on the first read, so an early decision (404, 413, 429,
circuit open) is sent before the app ever transmits a body nobody wants.

Not here: parsing, limits (the listener enforces ``http.max_request_body`` and fails the body with
the error), or anything about where the body goes.
"""

from __future__ import annotations

__all__ = ["BODY_HIGH_WATER", "BODY_LOW_WATER", "BodySource", "RequestBody"]

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Final, Protocol

from ..waiter import new_future

#: Request-body bytes buffered before reading from the app pauses (and resumes below LOW).
BODY_HIGH_WATER: Final = 256 * 1024
BODY_LOW_WATER: Final = 64 * 1024


class BodySource(Protocol):
    """What a :class:`RequestBody` needs from the connection it comes from."""

    def pause_body(self) -> None: ...

    def resume_body(self) -> None: ...

    def send_continue(self) -> None: ...


class RequestBody:
    """A request body streaming from the app. An ``AsyncIterator[bytes]``; iterate it once."""

    __slots__ = ("_continue", "_error", "_source", "_waiter", "chunks", "eof", "size")

    def __init__(self, source: BodySource, parts: list[bytes], expect_continue: bool) -> None:
        self._source = source
        self.chunks: deque[bytes] = deque(parts)
        self.size = sum(len(p) for p in parts)
        self.eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._continue = expect_continue

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > BODY_HIGH_WATER:
            self._source.pause_body()
        self._wake()

    def feed_eof(self) -> None:
        self.eof = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        """The body is broken (limit, malformed chunk, app gone): the reader gets ``error``."""
        if self._error is None:
            self._error = error
            self.chunks.clear()  # nothing after a broken body is forwarded
            self.size = 0
        self._wake()

    @property
    def failed(self) -> bool:
        return self._error is not None

    @property
    def error(self) -> BaseException | None:
        return self._error

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._continue:
            self._continue = False
            if not self.chunks and not self.eof and self._error is None:
                self._source.send_continue()
        while not self.chunks:
            if self._error is not None:
                raise self._error
            if self.eof:
                raise StopAsyncIteration
            self._waiter = new_future(asyncio.get_running_loop())
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = self.chunks.popleft()
        self.size -= len(data)
        if self.size < BODY_LOW_WATER:
            self._source.resume_body()  # a no-op unless the body had paused reading
        return data
