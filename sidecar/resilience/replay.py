"""The request-body replay buffer: a body is kept in memory only if it is small enough.

A retry must send the same body again, but a streamed body can be read only once.

**HTTP** (:func:`make_replayable`): before the first attempt the retry filter asks whether the
body can be replayed. A body already in memory (``bytes``, the common case: the listener
collects bodies up to 64 KiB) is replayable when it fits the buffer; a streamed body whose
``Content-Length`` fits is read into memory first (bounded, and the app has already committed to
sending that much); a longer stream, or one of unknown length (chunked), is never touched: it is
sent once and that call is not retried. Reading a stream and then finding it too long would leave
a body nobody can send, so the length is checked before a single byte is read. The buffer is
64 KiB by default, like Linkerd's.

**gRPC** (:class:`MessageReplay`): a call's body is a stream of whole messages of unknown number
(:mod:`sidecar.grpc.wire`), and a streaming app may wait for an answer before it sends its next
message, so nothing can be read ahead. The buffer is a tee instead, as gRFC A6 buffers: each
message is kept, boundaries intact, as the attempt pulls it from the app; a later attempt is
sent the kept messages first, then the rest of the app's stream. Once the messages kept pass the
limit the buffer stops keeping (the call is *committed*): the attempt under way goes on, and no
other attempt can be made.
"""

from __future__ import annotations

__all__ = ["MessageReplay", "make_replayable", "message_replay"]

import asyncio
from collections.abc import AsyncIterator

from ..exchange import Exchange, read_body


async def make_replayable(exchange: Exchange, limit: int) -> bool:
    """Make ``exchange.body`` something every attempt can send; ``False`` if it cannot be (too
    large or of unknown length: the body is left untouched, to be streamed once)."""
    body = exchange.body
    if isinstance(body, bytes):
        return len(body) <= limit
    length = exchange.body_length
    if length is None or length > limit:
        return False
    # the listener enforces Content-Length framing, so read_body cannot go past ``length``
    await read_body(exchange, limit)
    return True


class MessageReplay:
    """The app's request messages, kept (up to ``limit`` bytes) so another attempt can send them.

    :meth:`attempt` gives each attempt its own body. Only the newest attempt reads further from
    the app. An attempt that already ended (an UNAVAILABLE answer) may still have a read of the
    app's stream in flight: grpc.aio's request writer waits for the next message even after its
    call ended. That message is kept when it arrives, and the newest attempt waits for it rather
    than reading the app's stream twice at once.
    """

    __slots__ = ("_kept", "_limit", "_newest", "_reading", "_source", "_wake", "state", "size")

    def __init__(self, source: AsyncIterator[bytes], limit: int) -> None:
        self._source: AsyncIterator[bytes] | None = source
        self._limit = limit
        #: messages read so far, in order; no longer added to once committed.
        self._kept: list[bytes] = []
        self._newest = 0
        self._reading = False
        self._wake: asyncio.Future[None] | None = None
        #: bytes kept so far.
        self.size = 0
        #: ``open`` (replayable), ``committed`` (past the limit) or ``broken`` (a read of the
        #: app's stream was interrupted, so what it held is unknown).
        self.state = "open"

    @property
    def replayable(self) -> bool:
        """Whether another attempt could send every message the app sent and will send."""
        return self.state == "open"

    def attempt(self) -> AsyncIterator[bytes]:
        """A body for the next attempt: the messages kept, then the rest of the app's stream.
        Every earlier attempt's body stops reading from the app."""
        self._newest += 1
        return _Messages(self, self._newest)

    async def _next(self, number: int, index: int) -> tuple[bytes | None, bool]:
        """Message ``index`` for attempt ``number``: ``(message, kept)``, ``(None, _)`` at the
        end of that attempt's body."""
        while True:
            kept = self._kept
            if index < len(kept):
                return kept[index], True
            if number != self._newest or self._source is None:
                return None, False  # superseded, or the app's stream ended
            if self.state == "broken":
                raise RuntimeError("the app's request stream was interrupted: not replayed")
            if not self._reading:
                message = await self._read()
                if message is not None and number == self._newest and self.state != "open":
                    return message, False  # committed: passed on, not kept
                if message is not None:
                    kept.append(message)
                continue
            # an older attempt's read is in flight: its message will be kept for us
            wake = self._wake
            if wake is None:
                wake = self._wake = asyncio.get_running_loop().create_future()
            await asyncio.shield(wake)  # our cancellation must not cancel the others' wake-up

    async def _read(self) -> bytes | None:
        """One message from the app (``None`` at its end), counted against the limit."""
        source = self._source
        assert source is not None
        self._reading = True
        try:
            message = await source.__anext__()
        except StopAsyncIteration:
            self._source = None
            return None
        except BaseException:
            # a cancelled read may have consumed a message or ended the app's stream: never
            # send what may be a truncated stream as if it were whole
            self.state = "broken"
            raise
        finally:
            self._reading = False
            wake, self._wake = self._wake, None
            if wake is not None:
                wake.set_result(None)
        if self.state == "open":
            self.size += len(message)
            if self.size > self._limit:
                # committed (gRFC A6): this message is still kept, so whichever attempt is
                # newest gets it; nothing after it is
                self.state = "committed"
                self._kept.append(message)
                return None
        return message


def message_replay(exchange: Exchange, limit: int) -> MessageReplay | None:
    """The replay buffer behind a gRPC call's body, made now (and the body replaced by its first
    attempt) when the body is not one yet; ``None`` for a body held whole in memory."""
    body = exchange.body
    if isinstance(body, bytes):
        return None
    if isinstance(body, _Messages):
        return body.replay
    replay = MessageReplay(body, limit)
    exchange.body = replay.attempt()
    return replay


class _Messages:
    """One attempt's body: an async iterator of whole messages."""

    __slots__ = ("_index", "_number", "replay")

    def __init__(self, replay: MessageReplay, number: int) -> None:
        #: where this body comes from (the auth filter's renewal asks it for another attempt).
        self.replay = replay
        self._number = number
        self._index = 0

    def __aiter__(self) -> _Messages:
        return self

    async def __anext__(self) -> bytes:
        message, kept = await self.replay._next(self._number, self._index)
        if message is None:
            raise StopAsyncIteration
        if kept:
            self._index += 1
        return message
