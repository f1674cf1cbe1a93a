"""The request-body replay buffer: a body is kept in memory only if it is small enough.

A retry must send the same body again, but a streamed body can be read only once. So before the
first attempt the retry filter asks :func:`make_replayable`: a body already in memory (``bytes``,
the common case: the listener collects bodies up to 64 KiB) is replayable when it fits the
buffer; a streamed body whose ``Content-Length`` fits is read into memory first (bounded, and the
app has already committed to sending that much); a longer stream, or one of unknown length
(chunked), is never touched: it is sent once and that call is not retried. Reading a stream and
then finding it too long would leave a body nobody can send, so the length is checked before a
single byte is read. DESIGN §3: 64 KiB by default, like Linkerd.
"""

from __future__ import annotations

__all__ = ["make_replayable"]

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
