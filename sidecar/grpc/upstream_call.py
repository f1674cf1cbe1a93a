"""One call to a gRPC upstream on its grpc.aio channel: the ``grpc`` adapter's terminal handler.

gRPC's wire format is the same for the four RPC kinds, and a server does not say which kind a
method is, so the call is made the cheapest way that forwards the app's call whole:

- **one whole request message** (the front hands the body over as ``bytes``: the app had
  half-closed after it when the call began, as a unary or server-streaming call does): a
  ``unary_unary`` call for a method the config declares unary (:mod:`.unary_call`), else a
  ``unary_stream`` call, which is right for every kind given one request message and reads
  however many messages the upstream answers;
- **a stream** of messages: a bidirectional stream. A task sends the exchange's messages as the
  upstream accepts them (each ``write`` waits for gRPC's flow control), and the response's
  messages are read only as the app's side asks for them, so neither direction buffers more
  than a message. A guess never picks this path away from a call that needs it: a unary guess
  hangs server-streaming calls and cuts client-streaming ones to their first message.

Either call gets the exchange's metadata (``-bin`` values decoded) and a timeout rounded down
from what is left of ``exchange.deadline`` (:mod:`.upstream_deadline`): the upstream's deadline
is never later than the call's.

The handler returns once the upstream's answer is known: its initial metadata came with some
of the upstream's own, or its first message, or its end. A call that ended before any message
is a trailers-only :class:`~sidecar.exchange.Response` whose status the classifier, retry and
breaker see at once. Otherwise the body yields the messages and sets ``response.trailers``
before it ends. grpcio's errors are translated by :mod:`.upstream_status`.

This module imports grpcio; the adapter (:mod:`.adapter`) imports it when it builds its first
handler, so a sidecar with no gRPC upstream never loads grpcio for it.
"""

from __future__ import annotations

__all__ = ["MAX_METHODS", "UnaryMethods", "call_handler"]

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import grpc

from ..errors import SidecarError, UpstreamReset, UpstreamTimeout
from ..exchange import Exchange, Response
from .metadata import headers_from_metadata, request_metadata, status_trailers
from .unary_call import call_unary
from .upstream_deadline import upstream_timeout
from .upstream_status import failed_trailers

if TYPE_CHECKING:
    from ..chain import Handler
    from ..telemetry.metrics import Metrics

#: method paths whose callables a handler keeps (the app chooses paths: bounded).
MAX_METHODS = 1024
_EOF = grpc.aio.EOF
#: whether a method path is one the config declares unary (:mod:`.channels`).
UnaryMethods = Callable[[str], bool]


def call_handler(
    name: str,
    channel: grpc.aio.Channel,
    target: str,
    metrics: Metrics,
    is_unary: UnaryMethods,
) -> Handler:
    """The terminal handler of upstream ``name``: each call the cheapest grpc.aio call on
    ``channel`` that forwards it whole (see the module docstring)."""
    where = f"upstream {name!r} ({target})"
    #: per method path: its stream-stream callable; its one-request callable and whether that
    #: one is unary-unary
    streams: dict[str, Any] = {}
    singles: dict[str, tuple[Any, bool]] = {}
    get_loop = asyncio.get_running_loop
    attempts = metrics.attempts(name)
    answered, failed = attempts.response, attempts.failed

    async def call_upstream(ex: Exchange) -> Response:
        loop = get_loop()
        timeout = deadline = None
        if ex.deadline is not None:
            # from the deadline as it is now, rounded down (see upstream_deadline)
            now = loop.time()
            timeout = upstream_timeout(ex.deadline - now)
            if timeout is None:
                raise UpstreamTimeout(f"the call's deadline passed before it went to {where}")
            deadline = now + timeout
        metadata = request_metadata(ex.headers)
        path = ex.path
        body = ex.body
        try:
            if isinstance(body, bytes):
                single = singles.get(path)
                if single is None:
                    unary = is_unary(path)
                    make = channel.unary_unary if unary else channel.unary_stream
                    single = (make(path), unary)
                    if len(singles) < MAX_METHODS:
                        singles[path] = single
                method, unary = single
                call = method(body, metadata=metadata, timeout=timeout)
                if unary:
                    response = await call_unary(call, where, deadline)
                else:
                    response = await _answer(call, None, where, deadline)
            else:
                method = streams.get(path)
                if method is None:
                    method = channel.stream_stream(path)
                    if len(streams) < MAX_METHODS:
                        streams[path] = method
                call = method(metadata=metadata, timeout=timeout)
                writing = _Writing()
                pump = loop.create_task(_send(call, body, writing))
                # a call that ends while the pump waits in ``write`` would hold it forever
                # (grpc.aio's write waits for the call's start, which a call cancelled that
                # early never makes)
                call.add_done_callback(writing.release(pump))
                response = await _answer(call, pump, where, deadline)
        except BaseException as e:
            failed(e)  # the SidecarError's code, or cancelled
            raise
        answered()  # whatever its status: the upstream (or its status) answered
        return response

    return call_upstream


class _Writing:
    """Whether the pump waits in ``call.write`` (set around each write: two stores a message)."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = False

    def release(self, pump: asyncio.Task[BaseException | None]) -> Any:
        """The call's done callback: cancel the pump only if it is stuck in a write (never
        while it reads the app's stream: see :func:`_send`)."""

        def done(_call: Any) -> None:
            if self.now and not pump.done():
                pump.cancel()

        return done


async def _send(call: Any, body: AsyncIterator[bytes], writing: _Writing) -> BaseException | None:
    """Send the request messages as the upstream takes them, then half-close. Returns the
    error of an app stream that broke (the call is cancelled then), else ``None``.

    It is never cancelled while it reads the app's stream: it ends when the call does (its next
    write fails, or the call's done callback cancels a write that would wait forever) or the
    app's stream does, which the app's own call bounds. A read of the app's stream cut short
    could lose a message that a retry's replay buffer (:mod:`sidecar.resilience.replay`) keeps
    for the next attempt."""
    try:
        it = aiter(body)
        while True:
            try:
                message = await anext(it)
            except StopAsyncIteration:
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the app's stream broke: nothing more will come
                call.cancel()
                return e
            writing.now = True
            await call.write(message)
            writing.now = False
        writing.now = True
        await call.done_writing()
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: S110 - the call ended first: the status read says why
        pass
    return None


async def _answer(
    call: Any, pump: asyncio.Task[BaseException | None] | None, where: str, deadline: float | None
) -> Response:
    """The response once the upstream's answer is known (see the module docstring); ``pump``:
    the stream-stream call's request task."""
    first: bytes | None = None
    try:
        initial = await call.initial_metadata()
        ended = call.done()
        if not initial and not ended:
            # Empty initial metadata: headers grpcio got without metadata of the upstream's
            # (messages follow), or a trailers-only answer whose status it hands over a moment
            # later. The first read tells which, as soon as it is known: a message or the end.
            try:
                message = await call.read()
            except grpc.aio.AioRpcError as e:
                resp = Response(200)
                resp.trailers = failed_trailers(e, where, deadline, answered=False)
                return resp
            if message is _EOF:
                resp = Response(200)
                resp.trailers = status_trailers(
                    0, await call.details(), await call.trailing_metadata()
                )
                return resp
            first = message
        elif ended:
            # it ended before any message (messages come before the status): trailers-only
            resp = Response(200, headers_from_metadata(initial))
            try:
                message = await call.read()
            except grpc.aio.AioRpcError as e:
                resp.trailers = failed_trailers(e, where, deadline, answered=False)
            else:
                if message is not _EOF:  # cannot happen; never drop a message silently
                    raise UpstreamReset(f"{where}: a message came after the call ended")
                resp.trailers = status_trailers(
                    0, await call.details(), await call.trailing_metadata()
                )
            return resp
    except asyncio.CancelledError:
        call.cancel()
        _raise_pump_error(pump)
        raise
    except BaseException:
        call.cancel()
        raise
    resp = Response(200, headers_from_metadata(initial), length=None)
    resp.body = _messages(call, pump, first, resp, where, deadline)
    return resp


async def _messages(
    call: Any,
    pump: asyncio.Task[BaseException | None] | None,
    first: bytes | None,
    resp: Response,
    where: str,
    deadline: float | None,
) -> AsyncIterator[bytes]:
    """The response messages, read one at a time as the app's side asks (``first``: one read
    already); sets the trailers before it ends."""
    try:
        if first is not None:
            yield first
        while True:
            try:
                message = await call.read()
            except grpc.aio.AioRpcError as e:
                resp.trailers = failed_trailers(e, where, deadline, answered=True)
                return
            except asyncio.CancelledError:
                _raise_pump_error(pump)
                raise
            if message is _EOF:
                resp.trailers = status_trailers(
                    0, await call.details(), await call.trailing_metadata()
                )
                return
            yield message
    finally:
        if not call.done():
            call.cancel()


def _raise_pump_error(pump: asyncio.Task[BaseException | None] | None) -> None:
    """A read was cancelled because the app's request stream broke (the pump cancelled the
    call), not because this task was: say so instead of passing a cancellation on."""
    if pump is None:
        return
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return
    if pump.done() and not pump.cancelled():
        error = pump.result()
        if error is not None:
            if isinstance(error, SidecarError):
                raise error
            raise UpstreamReset(f"the app's request stream broke: {error}") from error
