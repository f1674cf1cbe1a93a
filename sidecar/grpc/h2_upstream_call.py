"""One call to a gRPC upstream on the sidecar's own HTTP/2 client (:mod:`.h2_channel`): the
``grpc`` adapter's terminal handler, with the contract of :mod:`.upstream_call` (grpc.aio's).

The request: HEADERS with the exchange's metadata (:func:`~.metadata.request_metadata`, ``-bin``
values base64 on the wire) and a ``grpc-timeout`` rounded down from what is left of
``exchange.deadline`` (the upstream's deadline is never later than the call's), then the
messages with gRPC's 5-byte prefix: a ``bytes`` body is one whole message, sent with the
half-close in the same write when the window takes it; a stream of messages is sent by a task
as the upstream's window allows, never cut short while it reads the app's stream (a retry's
replay buffer keeps what it read).

The answer, in the same shapes as grpc.aio's path:

- a trailers-only answer (the status in the HEADERS), or one that ends before its first
  message when it came without metadata of its own, is a ``Response`` whose trailers are set
  at once, so the classifier, retry and breaker see the status;
- a method the config declares unary (``is_unary``) with a one-message request is answered
  whole: its one message (:class:`~.unary_call.OneMessage` when empty) and its trailers;
- otherwise the body yields the messages as the app's side reads them (received bytes are
  acknowledged only then: a slow app slows the upstream) and sets ``response.trailers``
  before it ends.

Trailers hold ``grpc-status``, ``grpc-message`` (percent-decoded) and the trailing metadata,
as :func:`~.metadata.status_trailers` builds them. What the sidecar found itself is an error
before any answer (``upstream_connect``/``tls`` from the channel, ``upstream_reset``,
``upstream_timeout``), and after the answer began a status whose details name the upstream,
with ``x-sidecar-error`` saying why (as :func:`~.upstream_status.failed_trailers` does). A
message over ``max_receive_message_size`` or ``max_send_message_size`` is RESOURCE_EXHAUSTED
with ``body_too_large``; a compressed one is INTERNAL with ``upstream_protocol`` (the client
accepts only ``identity``). A call cancelled, or past its deadline, resets its stream with
CANCEL.

Per call: no config lookup, no logging, no string formatting off the error paths.
"""

from __future__ import annotations

__all__ = ["MAX_REFUSALS", "call_handler"]

import asyncio
from base64 import b64encode
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from ..errors import SidecarError, UpstreamReset, UpstreamTimeout
from ..exchange import Exchange, Headers, Response
from .h2_client_framing import (
    FramingError,
    code_of_http_status,
    frame_message,
    grpc_timeout,
    response_metadata_of,
    trailers_of,
)
from .h2_client_stream import CANCEL, NO_ERROR, ClientStream, StreamGone
from .metadata import request_metadata, status_trailers
from .unary_call import OneMessage

if TYPE_CHECKING:
    from ..chain import Handler
    from ..telemetry.metrics import Metrics
    from .h2_channel import H2Channel

#: whether a method path is one the config declares unary (:mod:`.channels`).
UnaryMethods = Callable[[str], bool]
_STATUS_200 = (b":status", b"200")
#: times a one-message call is sent again after the upstream refused its stream unread.
MAX_REFUSALS = 5
#: an upstream's DEADLINE_EXCEEDED this close to the call's deadline is the deadline's doing.
_DEADLINE_SLACK = 0.005


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
    get_loop = asyncio.get_running_loop
    attempts = metrics.attempts(name)
    answered, failed = attempts.response, attempts.failed
    #: method paths already encoded, and whether each is unary (the app chooses paths: bounded)
    paths: dict[str, tuple[bytes, bool]] = {}

    async def call_upstream(ex: Exchange) -> Response:
        loop = get_loop()
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
                    response.trailers = _local_trailers(
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
                            response = await _answer_unary(stream, timer, where, deadline)
                        else:
                            response = await _answer(stream, pump, timer, where, deadline)
                        break
                    except UpstreamReset:
                        # refused before it ran (the upstream's stream count lags, or GOAWAY):
                        # sent again, as gRPC clients do, on the next stream free
                        if not stream.refused or refusals == MAX_REFUSALS:
                            raise
                        refusals += 1
            else:
                stream = start(headers, False) or await open_stream(headers, False, deadline)
                pump = loop.create_task(_pump(stream, body, max_send))
                timer = None if deadline is None else loop.call_at(deadline, stream.expire)
                response = await _answer(stream, pump, timer, where, deadline)
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


def _finish(stream: ClientStream, timer: asyncio.TimerHandle | None) -> None:
    """The call is over for the app: no timer, and the stream closed both ways (RST_STREAM
    when not: CANCEL while the upstream still answers, NO_ERROR to stop a request it no
    longer reads)."""
    if timer is not None:
        timer.cancel()
    if not (stream.remote_ended and stream.local_ended):
        stream.reset(NO_ERROR if stream.remote_ended else CANCEL)


def _local_trailers(code: int, reason: str, where: str, details: object) -> Headers:
    trailers = status_trailers(code, f"{where}: {details}", None)
    trailers.add("x-sidecar-error", reason)
    return trailers


def _final_trailers(
    stream: ClientStream, where: str, deadline: float | None, *, answered: bool
) -> Headers:
    """The trailers of a stream that ended; raises the sidecar's error for a failure it found
    before any answer (or a broken app stream, whenever)."""
    error = stream.app_error
    if error is not None:
        if isinstance(error, SidecarError):
            raise error
        raise UpstreamReset(f"the app's request stream broke: {error}") from error
    framing = stream.framing
    if framing is not None:
        return _local_trailers(framing.code, framing.reason, where, framing.details)
    if stream.timed_out:
        if not answered:
            raise UpstreamTimeout(f"no answer from {where} within the call's deadline")
        return _local_trailers(4, "upstream_timeout", where, "deadline exceeded")
    failure = stream.failure
    if failure is not None:
        if not answered:
            raise UpstreamReset(f"{where} {failure}")
        return _local_trailers(14, "upstream_reset", where, failure)
    block = stream.trailers
    if block is None:
        return _local_trailers(13, "upstream_protocol", where, "the call ended without a status")
    trailers = trailers_of(block)
    if (
        deadline is not None
        and trailers.get("grpc-status") == "4"
        and asyncio.get_running_loop().time() >= deadline - _DEADLINE_SLACK
    ):
        if not answered:
            raise UpstreamTimeout(f"no answer from {where} within the call's deadline")
        trailers.add("x-sidecar-error", "upstream_timeout")
    return trailers


def _not_grpc(head: list[tuple[bytes, bytes]], where: str) -> Headers | None:
    """The trailers of an answer that is not gRPC's (``:status`` other than 200), else
    ``None``."""
    if head[0] == _STATUS_200:
        return None
    status = next((v for k, v in head if k == b":status"), b"")
    if status == b"200":
        return None
    code = code_of_http_status(int(status) if status.isdigit() and len(status) == 3 else 0)
    return status_trailers(code, f"{where} answered HTTP {status.decode('latin-1')}", None)


async def _answer(
    stream: ClientStream,
    pump: asyncio.Task[None] | None,
    timer: asyncio.TimerHandle | None,
    where: str,
    deadline: float | None,
) -> Response:
    """The response once the upstream's answer is known (see the module docstring)."""
    first: bytes | None = None
    try:
        while stream.head is None and not stream.remote_ended:
            await stream.wait()
        head = stream.head
        if head is None:  # nothing came: the trailers raise, or say why (a size limit)
            resp = Response(200)
            resp.trailers = _final_trailers(stream, where, deadline, answered=False)
            _finish(stream, timer)
            return resp
        other = _not_grpc(head, where)
        if other is not None:
            resp = Response(200)
            resp.trailers = other
            _finish(stream, timer)
            return resp
        if stream.trailers is head:  # trailers-only: its HEADERS carry trailing metadata
            resp = Response(200)
            resp.trailers = _final_trailers(stream, where, deadline, answered=False)
            _finish(stream, timer)
            return resp
        initial = response_metadata_of(head)
        messages = stream.reader.messages
        if not initial:
            # no metadata of the upstream's: wait for the first message or the end, so a call
            # that ends before any message is answered with its status at once
            while not messages and not stream.remote_ended:
                await stream.wait()
        if messages:
            first = stream.take()
        elif stream.remote_ended:
            resp = Response(200, Headers.wrap(initial))
            resp.trailers = _final_trailers(stream, where, deadline, answered=False)
            _finish(stream, timer)
            return resp
    except BaseException:
        _finish(stream, timer)
        raise
    resp = Response(200, Headers.wrap(initial), length=None)
    resp.body = _messages(stream, pump, timer, first, resp, where, deadline)
    return resp


async def _messages(
    stream: ClientStream,
    pump: asyncio.Task[None] | None,
    timer: asyncio.TimerHandle | None,
    first: bytes | None,
    resp: Response,
    where: str,
    deadline: float | None,
) -> AsyncIterator[bytes]:
    """The response messages, taken one at a time as the app's side asks (``first``: one
    taken already); sets the trailers before it ends. ``pump`` is held for the call's life."""
    try:
        if first is not None:
            yield first
        messages = stream.reader.messages
        while True:
            if messages:
                yield stream.take()
            elif stream.remote_ended:
                resp.trailers = _final_trailers(stream, where, deadline, answered=True)
                return
            else:
                await stream.wait()
    finally:
        _finish(stream, timer)


async def _answer_unary(
    stream: ClientStream, timer: asyncio.TimerHandle | None, where: str, deadline: float | None
) -> Response:
    """The whole answer of a call to a declared unary method."""
    try:
        while not stream.remote_ended:
            await stream.wait()
        head = stream.head
        if head is not None:
            other = _not_grpc(head, where)
            if other is not None:
                resp = Response(200)
                resp.trailers = other
                return resp
        trailers = _final_trailers(stream, where, deadline, answered=False)
        # trailers-only: what its HEADERS carry is trailing metadata
        initial = (
            None
            if head is None or stream.trailers is head
            else Headers.wrap(response_metadata_of(head))
        )
        messages = stream.reader.messages
        body: bytes | OneMessage = b""
        if trailers.get("grpc-status") == "0":
            if len(messages) == 1:
                message = messages.popleft()
                body = message if message else OneMessage(message)
            else:
                why = f"answered a unary call with {len(messages)} messages"
                trailers = _local_trailers(13, "upstream_protocol", where, why)
        resp = Response(200, initial, body)
        resp.trailers = trailers
        return resp
    finally:
        _finish(stream, timer)
