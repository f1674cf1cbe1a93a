"""One call to a gRPC upstream on its grpc.aio channel: the ``grpc`` adapter's terminal handler.

Every call, whatever its RPC kind, is made as a bidirectional stream on the upstream's channel
(:mod:`.channels`) with raw message bytes: gRPC's wire format is the same for the four kinds,
and only a stream-stream call forwards all of them correctly (a unary guess hangs
server-streaming calls and cuts client-streaming ones to their first message). The call gets
the exchange's metadata (``-bin`` values decoded) and, as its deadline, what is left of
``exchange.deadline``; a task sends the exchange's messages as the upstream accepts them (each
``write`` waits for gRPC's flow control), and the response's messages are read only as the app's
side asks for them, so neither direction buffers more than a message.

The handler returns once the upstream's initial metadata came, or its call ended first: a call
that failed before any message is a trailers-only :class:`~sidecar.exchange.Response` whose
status the classifier, retry and breaker see at once. Otherwise the body yields the messages and
sets ``response.trailers`` before it ends.

grpcio's errors are translated here, the boundary that called it. A status the upstream sent is
passed on as sent. One grpcio made up itself (:func:`_local_reason`: a connection that could not
be made or broke, the deadline, a size limit) is the sidecar's finding: before any answer it is
raised as ``upstream_connect`` (``tls`` when the handshake was refused), ``upstream_reset`` or
``upstream_timeout``; after the answer began, the status stays, its details name the upstream,
and ``x-sidecar-error`` says the reason.

This module imports grpcio; the adapter (:mod:`.adapter`) imports it when it builds its first
handler, so a sidecar with no gRPC upstream never loads grpcio for it.
"""

from __future__ import annotations

__all__ = ["MAX_METHODS", "PEEK", "call_handler"]

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from ..errors import (
    SidecarError,
    UpstreamConnectError,
    UpstreamReset,
    UpstreamTimeout,
    UpstreamTLSError,
)
from ..exchange import Body, Exchange, Headers, Response
from .metadata import headers_from_metadata, request_metadata, status_trailers

if TYPE_CHECKING:
    from ..chain import Handler
    from ..telemetry.metrics import Metrics

#: method paths whose callables a handler keeps (the app chooses paths: bounded).
MAX_METHODS = 1024
#: how long a call with empty initial metadata waits for its first message before it is
#: answered as a stream (see _answer); a trailers-only answer's status comes well within it.
PEEK = 0.01
_EOF = grpc.aio.EOF


def call_handler(name: str, channel: grpc.aio.Channel, target: str, metrics: Metrics) -> Handler:
    """The terminal handler of upstream ``name``: each call a stream-stream call on
    ``channel`` (see the module docstring)."""
    where = f"upstream {name!r} ({target})"
    methods: dict[str, Any] = {}
    get_loop = asyncio.get_running_loop
    attempts = metrics.attempts(name)
    answered, failed = attempts.response, attempts.failed

    async def call_upstream(ex: Exchange) -> Response:
        loop = get_loop()
        timeout = None
        if ex.deadline is not None:
            timeout = ex.deadline - loop.time()
            if timeout <= 0:
                raise UpstreamTimeout(f"the call's deadline passed before it went to {where}")
        metadata = request_metadata(ex.headers)
        method = methods.get(ex.path)
        if method is None:
            method = channel.stream_stream(ex.path)
            if len(methods) < MAX_METHODS:
                methods[ex.path] = method
        call = method(metadata=metadata, timeout=timeout)
        writing = _Writing()
        pump = loop.create_task(_send(call, ex.body, writing))
        # a call that ends while the pump waits in ``write`` would hold it forever (grpc.aio's
        # write waits for the call's start, which a call cancelled that early never makes)
        call.add_done_callback(writing.release(pump))
        try:
            response = await _answer(call, pump, where, ex.deadline)
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


async def _send(call: Any, body: Body, writing: _Writing) -> BaseException | None:
    """Send the request messages as the upstream takes them, then half-close. Returns the
    error of an app stream that broke (the call is cancelled then), else ``None``.

    It is never cancelled while it reads the app's stream: it ends when the call does (its next
    write fails, or the call's done callback cancels a write that would wait forever) or the
    app's stream does, which the app's own call bounds. A read of the app's stream cut short
    could lose a message that a retry's replay buffer (:mod:`sidecar.resilience.replay`) keeps
    for the next attempt."""
    try:
        if isinstance(body, bytes):
            # a body buffered whole (a replay buffer, a plugin): one message
            writing.now = True
            await call.write(body)
            writing.now = False
        else:
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
    call: Any, pump: asyncio.Task[BaseException | None], where: str, deadline: float | None
) -> Response:
    """The response once the initial metadata came (or the call ended first)."""
    first: asyncio.Task[Any] | None = None
    try:
        initial = await call.initial_metadata()
        ended = call.done()
        if not initial and not ended:
            # Empty initial metadata: headers that came with the first message (grpcio servers
            # send them so), or a trailers-only answer whose status grpcio hands over a moment
            # later (about one call in eight here). Peek at the first message to tell which,
            # briefly: a server that sent empty headers and waits for the app is not held up.
            first = asyncio.get_running_loop().create_task(call.read())
            await asyncio.wait((first,), timeout=PEEK)
            if first.done() and (
                first.cancelled() or first.exception() is not None or first.result() is _EOF
            ):
                ended = True  # the read saw the end: its outcome is the status
        if ended:
            # it ended before any message (messages come before the status): trailers-only
            resp = Response(200, headers_from_metadata(initial))
            try:
                message = await (first if first is not None else call.read())
            except grpc.aio.AioRpcError as e:
                resp.trailers = _failed(e, where, deadline, answered=False)
            else:
                if message is not _EOF:  # cannot happen; never drop a message silently
                    raise UpstreamReset(f"{where}: a message came after the call ended")
                resp.trailers = status_trailers(
                    0, await call.details(), await call.trailing_metadata()
                )
            return resp
    except asyncio.CancelledError:
        call.cancel()
        if first is not None:
            first.cancel()
        _raise_pump_error(pump)
        raise
    except BaseException:
        call.cancel()
        if first is not None:
            first.cancel()
        raise
    resp = Response(200, headers_from_metadata(initial), length=None)
    resp.body = _messages(call, pump, first, resp, where, deadline)
    return resp


async def _messages(
    call: Any,
    pump: asyncio.Task[BaseException | None],
    first: asyncio.Task[Any] | None,
    resp: Response,
    where: str,
    deadline: float | None,
) -> AsyncIterator[bytes]:
    """The response messages, read one at a time as the app's side asks (``first``: a read
    already under way); sets the trailers before it ends."""
    try:
        while True:
            try:
                if first is not None:
                    read, first = first, None
                    message = await read
                else:
                    message = await call.read()
            except grpc.aio.AioRpcError as e:
                resp.trailers = _failed(e, where, deadline, answered=True)
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
        if first is not None:
            first.cancel()


def _raise_pump_error(pump: asyncio.Task[BaseException | None]) -> None:
    """A read was cancelled because the app's request stream broke (the pump cancelled the
    call), not because this task was: say so instead of passing a cancellation on."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return
    if pump.done() and not pump.cancelled():
        error = pump.result()
        if error is not None:
            if isinstance(error, SidecarError):
                raise error
            raise UpstreamReset(f"the app's request stream broke: {error}") from error


def _failed(
    error: grpc.aio.AioRpcError, where: str, deadline: float | None, *, answered: bool
) -> Headers:
    """The trailers of a call that ended with a non-OK status; raises the sidecar's error for
    one grpcio made up before any answer (see the module docstring)."""
    code: int = error.code().value[0]
    details: str = error.details() or ""
    trailing = error.trailing_metadata()
    reason = _local_reason(code, details, deadline)
    if reason is None:
        return status_trailers(code, details, trailing)
    if not answered:
        if reason == "upstream_connect":
            lowered = details.lower()
            if any(word in lowered for word in _TLS_WORDS):
                raise UpstreamTLSError(f"TLS with {where} failed: {details}")
            raise UpstreamConnectError(f"cannot reach {where}: {details}")
        if reason == "upstream_timeout":
            raise UpstreamTimeout(f"no answer from {where} within the call's deadline")
        if reason == "upstream_reset":
            raise UpstreamReset(f"{where} closed the connection: {details}")
    trailers = status_trailers(code, f"{where}: {details}", trailing)
    trailers.add("x-sidecar-error", reason)
    return trailers


def _local_reason(code: int, details: str, deadline: float | None) -> str | None:
    """The ``x-sidecar-error`` reason of a status grpcio made up itself (its transport failed,
    the deadline passed, a size limit), ``None`` for one the upstream sent. grpcio does not say
    which it was: its own statuses are told by their wording, and a deadline by the clock."""
    if code == 4:
        if deadline is not None and asyncio.get_running_loop().time() >= deadline - 0.001:
            return "upstream_timeout"
        return None
    lowered = details.lower()
    if code == 8 and "larger than max" in lowered:
        return "body_too_large"  # (grpcio words it "Stream removed (... larger than max ...)")
    if code == 14 and any(words in lowered for words in _CONNECT_WORDS):
        return "upstream_connect"
    if any(words in lowered for words in _TRANSPORT_WORDS):
        return "upstream_reset"
    return None


#: grpcio's wording for failures it found itself (an upstream does not answer with these).
_CONNECT_WORDS = (
    "failed to connect to all addresses",
    "failed to connect to remote host",
    "dns resolution failed",
    "connections to all backends failing",
)
_TRANSPORT_WORDS = (
    "socket closed",
    "connection reset",
    "broken pipe",
    "goaway",
    "rst_stream",
    "keepalive watchdog",
    "stream removed",
    "endpoint closing",
)
_TLS_WORDS = ("handshake", "ssl", "certificate", "tls")
