"""One call to a gRPC upstream on the sidecar's own HTTP/2 client (:mod:`.h2_channel`): the
``grpc`` adapter's terminal handler.

The request: HEADERS with the exchange's metadata (:func:`~.metadata.request_metadata`, ``-bin``
values base64 on the wire) and a ``grpc-timeout`` rounded down from what is left of
``exchange.deadline`` (the upstream's deadline is never later than the call's), then the
messages with gRPC's 5-byte prefix: a ``bytes`` body is one whole message, sent with the
half-close in the same write when the window takes it; a stream of messages is sent by a task
as the upstream's window allows, never cut short while it reads the app's stream (a retry's
replay buffer keeps what it read).

The answer (:mod:`.h2_call_answer`): a trailers-only
``Response`` when the status came first, a whole one for a declared unary method
(``is_unary``) called with one message, else a body of messages read as the app's side asks
(received bytes are acknowledged only then: a slow app slows the upstream) that sets
``response.trailers`` before it ends. A call refused before it ran (REFUSED_STREAM, or above
a GOAWAY's last stream) is sent again, up to :data:`MAX_REFUSALS` times, when its request is
one message (with what is left of its deadline). What the sidecar found itself is its error
before any answer (``upstream_connect``/``tls`` from the channel, ``upstream_reset``,
``upstream_timeout``) and a status with ``x-sidecar-error`` after. A message over
``max_send_message_size`` is not sent (RESOURCE_EXHAUSTED, ``body_too_large``). A call
cancelled, or past its deadline, resets its stream with CANCEL.

Per call: no config lookup, no logging, no string formatting off the error paths.
"""

from __future__ import annotations

__all__ = ["MAX_REFUSALS", "call_handler"]

import asyncio
from base64 import b64encode
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from ..errors import UpstreamReset, UpstreamTimeout
from ..exchange import Exchange, Response
from ..waiter import RunningLoop
from .h2_call_answer import answer, answer_unary, local_trailers
from .h2_client_framing import FramingError, frame_message, grpc_timeout, retime
from .h2_client_stream import CANCEL, ClientStream, StreamGone
from .metadata import request_metadata

if TYPE_CHECKING:
    from ..chain import Handler
    from ..telemetry.metrics import Metrics
    from .h2_channel import H2Channel

#: whether a method path is one the config declares unary (:mod:`.channels`).
UnaryMethods = Callable[[str], bool]
#: times a one-message call is sent again after the upstream refused its stream unread.
MAX_REFUSALS = 5


def call_handler(
    name: str,
    channel: H2Channel,
    target: str,
    metrics: Metrics,
    is_unary: UnaryMethods,
) -> Handler:
    """The terminal handler of upstream ``name``: each call a stream on ``channel`` (see the
    module docstring)."""
    where = f"upstream {name!r} ({target})"
    pseudo, fields = channel.pseudo, channel.fields
    start, open_stream = channel.start, channel.open
    max_send = channel.target.max_send_message_size
    running = RunningLoop()
    attempts = metrics.attempts(name)
    answered, failed = attempts.response, attempts.failed
    #: method paths already encoded, and whether each is unary (the app chooses paths: bounded)
    paths: dict[str, tuple[bytes, bool]] = {}

    async def call_upstream(ex: Exchange) -> Response:
        loop = running.get()
        path = ex.path
        known = paths.get(path)
        if known is None:
            known = (path.encode("latin-1", "replace"), is_unary(path))
            if len(paths) < 1024:
                paths[path] = known
        headers = [*pseudo, (b":path", known[0]), *fields]
        deadline = ex.deadline
        if deadline is not None:
            timeout = grpc_timeout(deadline - loop.time())
            if timeout is None:
                raise UpstreamTimeout(f"the call's deadline passed before it went to {where}")
            headers.append((b"grpc-timeout", timeout))
        for key, value in request_metadata(ex.headers):
            headers.append(
                (key.encode(), value.encode() if isinstance(value, str) else b64encode(value))
            )
        body = ex.body
        pump: asyncio.Task[None] | None = None
        try:
            if isinstance(body, bytes):
                if len(body) > max_send:
                    response = Response(200)
                    response.trailers = local_trailers(
                        8,
                        "body_too_large",
                        where,
                        f"a request message of {len(body)} bytes is larger than "
                        f"max_send_message_size ({max_send})",
                    )
                    answered()
                    return response
                framed = frame_message(body)
                refusals = 0
                while True:
                    stream = start(headers, False) or await open_stream(headers, False, deadline)
                    if not stream.send_now(framed, True):
                        pump = loop.create_task(_send_rest(stream, framed))
                    timer = None if deadline is None else loop.call_at(deadline, stream.expire)
                    try:
                        if known[1]:
                            response = await answer_unary(stream, timer, where, deadline)
                        else:
                            response = await answer(stream, pump, timer, where, deadline)
                        break
                    except UpstreamReset:
                        # refused before it ran (the upstream's stream count lags, or GOAWAY):
                        # sent again, as gRPC clients do, on the next stream free
                        if not stream.refused or refusals == MAX_REFUSALS:
                            raise
                        refusals += 1
                        if deadline is not None and not retime(headers, deadline - loop.time()):
                            raise UpstreamTimeout(
                                f"no answer from {where} within the call's deadline"
                            ) from None
            else:
                stream = start(headers, False) or await open_stream(headers, False, deadline)
                pump = loop.create_task(_pump(stream, body, max_send))
                timer = None if deadline is None else loop.call_at(deadline, stream.expire)
                response = await answer(stream, pump, timer, where, deadline)
        except BaseException as e:
            failed(e)  # the SidecarError's code, or cancelled
            raise
        answered()  # whatever its status: the upstream (or its status) answered
        return response

    return call_upstream


async def _send_rest(stream: ClientStream, framed: bytes) -> None:
    """The one request message the window did not take at once, then the half-close."""
    try:
        await stream.send(framed, True)
    except StreamGone:
        pass


async def _pump(stream: ClientStream, body: AsyncIterator[bytes], max_send: int) -> None:
    """Send the app's messages as the upstream takes them, then half-close. A broken app
    stream or a message over ``max_send`` resets the call (the reader says why)."""
    try:
        it = aiter(body)
        while True:
            try:
                message = await anext(it)
            except StopAsyncIteration:
                break
            except Exception as e:  # the app's stream broke: nothing more will come
                stream.app_error = e
                stream.reset(CANCEL)
                return
            if len(message) > max_send:
                stream.framing = FramingError(
                    8,
                    "body_too_large",
                    f"a request message of {len(message)} bytes is larger than "
                    f"max_send_message_size ({max_send})",
                )
                stream.reset(CANCEL)
                return
            framed = frame_message(message)
            if not stream.send_now(framed, False):
                await stream.send(framed, False)
        stream.end()
    except StreamGone:
        pass
