"""The answer of one call on the gRPC client (:mod:`.h2_upstream_call`), in the shapes of the
``grpc`` adapter's contract (:mod:`.wire`), from what its stream (:mod:`.h2_client_stream`) got.

- :func:`answer`: returns once the answer is known: its initial metadata came with some of the
  upstream's own, or its first message, or its end. A trailers-only answer (the status in the
  HEADERS), or one that ends before its first message, is a ``Response`` whose trailers are set
  at once; otherwise the body yields the messages as the app's side reads them and sets
  ``response.trailers`` before it ends.
- :func:`answer_unary`: a declared unary method's answer, whole: its one message
  (:class:`OneMessage` when empty) and its trailers.
- :func:`final_trailers`: the status, or the sidecar's error: what it found itself is raised
  before any answer (``upstream_reset``, ``upstream_timeout``), and after the answer began is
  a status naming the upstream with ``x-sidecar-error``. A size limit is
  RESOURCE_EXHAUSTED with ``body_too_large`` either way.

An answer that is not gRPC's (an HTTP error, another content type) ends the call with the code
the gRPC spec maps it to. Not here: sending the request (:mod:`.h2_upstream_call`).
"""

from __future__ import annotations

__all__ = ["OneMessage", "answer", "answer_unary", "final_trailers", "finish", "local_trailers"]

import asyncio
from collections.abc import AsyncIterator

from ..errors import SidecarError, UpstreamReset, UpstreamTimeout
from ..exchange import Headers, Response
from .h2_client_framing import code_of_http_status, response_metadata_of, trailers_of
from .h2_client_stream import CANCEL, NO_ERROR, ClientStream
from .metadata import status_trailers

_STATUS_200 = (b":status", b"200")
_GRPC_CONTENT_TYPE = (b"content-type", b"application/grpc")
#: an upstream's DEADLINE_EXCEEDED this close to the call's deadline is the deadline's doing.
_DEADLINE_SLACK = 0.005


class OneMessage:
    """A response body of exactly one message, empty ones included (a ``bytes`` body of
    ``b""`` says "no message" to the fronts)."""

    __slots__ = ("message",)

    def __init__(self, message: bytes) -> None:
        self.message: bytes | None = message

    def __aiter__(self) -> OneMessage:
        return self

    async def __anext__(self) -> bytes:
        message = self.message
        if message is None:
            raise StopAsyncIteration
        self.message = None
        return message


def finish(stream: ClientStream, timer: asyncio.TimerHandle | None) -> None:
    """The call is over for the app: no timer, and the stream closed both ways (RST_STREAM
    when not: CANCEL while the upstream still answers, NO_ERROR to stop a request it no
    longer reads)."""
    if timer is not None:
        timer.cancel()
    if not (stream.remote_ended and stream.local_ended):
        stream.reset(NO_ERROR if stream.remote_ended else CANCEL)


def local_trailers(code: int, reason: str, where: str, details: object) -> Headers:
    """A status the sidecar made up: its details name the upstream, ``x-sidecar-error`` why."""
    trailers = status_trailers(code, f"{where}: {details}", None)
    trailers.add("x-sidecar-error", reason)
    return trailers


def final_trailers(
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
        return local_trailers(framing.code, framing.reason, where, framing.details)
    if stream.timed_out:
        if not answered:
            raise UpstreamTimeout(f"no answer from {where} within the call's deadline")
        return local_trailers(4, "upstream_timeout", where, "deadline exceeded")
    failure = stream.failure
    if failure is not None:
        if not answered:
            raise UpstreamReset(f"{where} {failure}")
        return local_trailers(14, "upstream_reset", where, failure)
    block = stream.trailers
    if block is None:
        return local_trailers(13, "upstream_protocol", where, "the call ended without a status")
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
    """The trailers of an answer that is not gRPC's, else ``None``: a ``:status`` other than
    200 is the code gRPC maps it to (the upstream's answer), a content type other than gRPC's
    the sidecar's ``upstream_protocol``."""
    if head[0] == _STATUS_200 and len(head) > 1 and head[1] == _GRPC_CONTENT_TYPE:
        return None  # how gRPC servers begin their HEADERS
    status = content_type = b""
    for key, value in head:
        if key == b":status":
            status = value
        elif key == b"content-type":
            content_type = value
    if status != b"200":
        code = code_of_http_status(int(status) if status.isdigit() and len(status) == 3 else 0)
        return status_trailers(code, f"{where} answered HTTP {status.decode('latin-1')}", None)
    if content_type and not content_type.startswith(b"application/grpc"):
        why = f"answered with the content type {content_type.decode('latin-1')!r}, not gRPC's"
        return local_trailers(13, "upstream_protocol", where, why)
    return None


async def answer(
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
            resp.trailers = final_trailers(stream, where, deadline, answered=False)
            finish(stream, timer)
            return resp
        other = _not_grpc(head, where)
        if other is not None:
            resp = Response(200)
            resp.trailers = other
            finish(stream, timer)
            return resp
        if stream.trailers is head:  # trailers-only: its HEADERS carry trailing metadata
            resp = Response(200)
            resp.trailers = final_trailers(stream, where, deadline, answered=False)
            finish(stream, timer)
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
            resp.trailers = final_trailers(stream, where, deadline, answered=False)
            finish(stream, timer)
            return resp
    except BaseException:
        finish(stream, timer)
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
            if stream.timed_out:
                # the deadline ends the call now: messages still held (up to a window of tiny
                # ones from a fast upstream) would otherwise keep it going long past it
                messages.clear()
                resp.trailers = final_trailers(stream, where, deadline, answered=True)
                return
            if messages:
                yield stream.take()
            elif stream.remote_ended:
                resp.trailers = final_trailers(stream, where, deadline, answered=True)
                return
            else:
                await stream.wait()
    finally:
        finish(stream, timer)


async def answer_unary(
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
        trailers = final_trailers(stream, where, deadline, answered=False)
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
                trailers = local_trailers(13, "upstream_protocol", where, why)
        resp = Response(200, initial, body)
        resp.trailers = trailers
        return resp
    finally:
        finish(stream, timer)
