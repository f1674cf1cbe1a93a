"""One app connection on the HTTP/1.1 listener: its lifetime, and answering its requests in order.

:class:`HttpConnection` is an asyncio Protocol. Reading requests (llhttp's callbacks and the
checks it leaves to a server) is its base class,
:class:`~sidecar.listeners.http_request.RequestReader`; back-pressure both ways is
:class:`~sidecar.flow_control.FlowControl`, under that. This class answers what the reader
dispatches and ends the connection.

Requests are answered in order by one worker task that lives as long as the connection, so a call
costs no task creation. A request that breaks a rule gets its 4xx (``x-sidecar-error`` and a
one-line body) after the responses owed to the requests pipelined before it, and the connection
closes: nothing after malformed input is trusted.

Reading from the app pauses for three reasons, tracked separately (each a reason of
:class:`~sidecar.flow_control.FlowControl`): a streaming body buffered past its high-water mark,
too many pipelined requests queued, and input closed (refused, or past the last request). A
connection that closes after a response first half-closes and discards what the app still sends
for a moment (lingering close), so the kernel does not answer unread input with a reset that
would destroy the response the app has not read yet.

Not here: parsing (:mod:`sidecar.listeners.http_request`), response framing
(:mod:`sidecar.listeners.http_response`), routing decisions (:mod:`sidecar.routing`), the
listening socket and timers (:mod:`sidecar.listeners.http`), filters, or anything
upstream-specific.
"""

from __future__ import annotations

__all__ = ["COLLECT_LIMIT", "MAX_PIPELINED", "WORKER_TASK", "HttpConnection"]

import asyncio
import logging
import socket
from collections import deque
from typing import TYPE_CHECKING, Final, cast

from ..answers import error_response
from ..chain import Handler, ObservedHandler
from ..errors import RequestTimeout, SidecarError
from ..exchange import Exchange, Response
from ..flow_control import write_pass
from ..http1 import CLOSED_REQUEST_PARSER
from ..routing import Route, RouteTable, normalize_path
from ..waiter import Wake, new_future, set_result_now
from .http_body import RequestBody
from .http_request import COLLECT_LIMIT, RequestReader
from .http_response import REFUSED, refusal_bytes, write_response, write_whole
from .http_state import BUSY, HEAD, IDLE, INPUT_CLOSED, LINGER, QUEUE_FULL

if TYPE_CHECKING:
    from .http import HttpListener

log = logging.getLogger("sidecar.listener")

#: Requests queued behind the one in progress on a pipelining connection before reading pauses.
MAX_PIPELINED: Final = 16
#: The name of each connection's worker task: what finds them among the loop's tasks (a
#: compiled coroutine has no ``__qualname__`` to tell them by).
WORKER_TASK: Final = "sidecar-http-worker"
#: How long a closing connection reads and discards what the app still sends (lingering close).
LINGER_SECONDS: Final = 2.0
#: the longest path an app connection keeps normalised for its next request
_KEPT_PATH_CHARS: Final = 256


class HttpConnection(RequestReader):
    """One app connection."""

    def __init__(self, listener: HttpListener) -> None:
        super().__init__(listener)
        self.loop = asyncio.get_running_loop()
        #: dispatched requests in order; a ``Response`` is a refusal owed after them.
        self.queue: deque[Exchange | Response] = deque()
        self.worker: asyncio.Task[None] | None = None
        #: the worker's wake-up, kept for each Future it waits on: the next request, and each
        #: call's upstream answer (the worker runs the call; the exchange carries this along)
        self.wake = Wake()
        #: what the idle worker waits on for the next request
        self.next_ready: asyncio.Future[None] | None = None
        #: in ``data_received``: a request dispatched now wakes the worker once the read is done
        self.receiving = False
        self.worker_owed = False
        self.refused = False
        self.lingering = False
        #: the header lines of the last upstream answer passed on unread, and the wire pairs
        #: they were made from: the next answer with equal headers reuses them (short blocks
        #: only, see ``http_response``)
        self.last_wire: list[tuple[bytes, bytes]] | None = None
        self.last_block = b""
        #: the last request path routed (a short one), and it normalised; at first a path no
        #: request can have (a request target holds no line feed)
        self.last_path = "\n"
        self.last_normalized = ""
        #: the last call's route, kept while the route table, the normalised path and the Host
        #: are the very same objects (a table whose routes match no header values only)
        self.last_routes: RouteTable | None = None
        self.last_route_path = ""
        self.last_route_host: str | None = None
        self.last_route: Route | None = None
        self.last_forwarded = ""

    # --- connection events -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.listener.connection_opened(self):
            # over the listener's connection cap: its handle goes back at once
            self.closed = self.input_closed = True
            cast(asyncio.Transport, transport).abort()
            return
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.write_pass = write_pass(self.loop)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.client = f"{peer[0]}:{peer[1]}"
        self.since = self.listener.now

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.input_closed = True
        self.unsent = None  # nowhere to go
        # frees this connection by reference counting (see CLOSED_REQUEST_PARSER)
        self.parser = CLOSED_REQUEST_PARSER
        self.listener.connection_closed(self)
        stream = self.stream
        if stream is not None and not stream.eof:
            stream.fail(asyncio.CancelledError())
        worker = self.worker
        if worker is not None and not worker.done():
            worker.cancel()
        self.fail_drain()

    def data_received(self, data: bytes) -> None:
        self.receiving = True
        try:
            super().data_received(data)
        finally:
            self.receiving = False
        if self.worker_owed:
            # the worker was idle and a request came: it answers it now, in this callback
            # (its step is this read's last act), not on the loop's next pass
            self.worker_owed = False
            w = self.next_ready
            if w is not None and not w.done():
                set_result_now(w, None, self.loop, self.wake)

    def eof_received(self) -> bool | None:
        # The app's FIN means it is gone, as nginx and Go take it: a half-close and a full close
        # look the same until a write fails, and keeping the call alive for an app that left
        # would hold an upstream connection for nothing. Close; in-flight calls are cancelled.
        # Closed from now: an answer that comes before ``connection_lost`` (the transport drops
        # what is written to it while it closes) is told it was not delivered, not logged sent.
        self.closed = self.input_closed = True
        return None

    # --- answering ---------------------------------------------------------------------------

    def dispatch(self, ex: Exchange) -> None:
        self.state = BUSY
        self.listener.began += 1  # the wait for a quiet app sees every call (app_quiet)
        ex._wake = self.wake
        queue = self.queue
        queue.append(ex)
        if len(queue) > MAX_PIPELINED:
            self.pause_reading(QUEUE_FULL)
        if self.worker is None:
            self.worker = self.loop.create_task(self.work(), name=WORKER_TASK)
        elif self.receiving:
            self.worker_owed = True  # woken once the read is parsed (data_received)
        else:
            w = self.next_ready
            if w is not None and not w.done():
                w.set_result(None)

    async def work(self) -> None:
        """Answer dispatched requests in order, for as long as the connection lives."""
        queue = self.queue
        try:
            while True:
                if not queue:
                    self.next_ready = new_future(self.loop)
                    await self.next_ready
                    self.next_ready = None
                    continue
                item = queue.popleft()
                if self._read_paused & QUEUE_FULL and len(queue) < MAX_PIPELINED // 2:
                    self.resume_reading(QUEUE_FULL)
                if isinstance(item, Response):  # a refusal owed after earlier requests
                    await write_response(self, REFUSED, item)
                    break
                # one request: routed, handled and written here, not in a coroutine of its own
                # (a frame per request fewer)
                ex = item
                resp = self.broken_body(ex)
                if resp is None:
                    try:
                        handler = self.route(ex)
                        if type(handler) is ObservedHandler:
                            # the chain's outer observers run here, as Observing.__call__ runs
                            # them, in this frame rather than in a coroutine of their own
                            observing = handler.observing
                            failed = observing.begin_all(ex)
                            if failed is None:
                                try:
                                    resp = await handler.inner(ex)
                                except BaseException as raised:
                                    failed = observing.fail_all(ex, raised)
                                else:
                                    failed = observing.finish_all(ex, resp)
                            if failed is not None:
                                resp = observing.rescue(ex, failed)
                            assert resp is not None  # answered, or rescued, or raised
                        else:
                            resp = await handler(ex)
                    except SidecarError as e:
                        resp = self.unrouted(ex, e)
                    except Exception:
                        resp = self.unexpected()
                    ex._wake = None  # an exchange a plugin keeps does not keep this connection
                kept = write_whole(self, ex, resp)  # the common answer: no coroutine to write it
                if kept is None:
                    kept = await write_response(self, ex, resp)
                if not kept:
                    break
                if self.write_paused:
                    # the app has not read what was written: no more answers until it does (or
                    # it is cut off, see ``drain``), or an app pipelining requests and reading
                    # nothing would pile their answers up in memory without bound
                    await self.drain()
                if not queue and self.stream is None:
                    if self.input_closed or (self.listener.draining and not self.mid_message):
                        # past the last request, or shutting down with no request still
                        # arriving (write_response said Connection: close): nothing more comes
                        break
                    self.state = HEAD if self.in_head else IDLE
                    self.since = self.listener.now
        except (asyncio.CancelledError, ConnectionError):
            self.close(abort=True)
            return
        self.finish()

    def broken_body(self, ex: Exchange) -> Response | None:
        """The refusal of a request whose body broke (malformed, over the limit) while it
        waited behind earlier ones, rather than a doomed call upstream; else ``None``."""
        body = ex.body
        if type(body) is RequestBody and isinstance(body.error, SidecarError):
            self.listener.count_unrouted(body.error)
            resp = error_response(body.error)
            resp.close = True
            return resp
        return None

    def route(self, ex: Exchange) -> Handler:
        """The handler of the route ``ex`` takes (its path normalised, its upstream and route
        set), or the :class:`SidecarError` that refuses it."""
        listener = self.listener
        raw = ex.path
        if raw == self.last_path:  # an app calls the same path again: normalised once
            path = self.last_normalized
        else:
            path = normalize_path(raw)
            if len(raw) <= _KEPT_PATH_CHARS:
                self.last_path = raw
                self.last_normalized = path
        af = self.absolute_form
        routes = listener.routes
        host = ex.host
        if af and ex in af:
            af.discard(ex)
            route, path = routes.resolve(path, host, ex.headers, authority_only=True)
        elif (
            routes is self.last_routes
            and path is self.last_route_path
            and host is self.last_route_host
            and self.last_route is not None
        ):
            # the same table, path and Host as the last call: its route (the table routes by
            # path and Host alone, see below)
            route = self.last_route
            path = self.last_forwarded
        else:
            normalized = path
            route, path = routes.resolve(path, host, ex.headers)
            if routes.by_path_and_host and len(normalized) <= _KEPT_PATH_CHARS:
                # (a longer path is never the kept normalised one: nothing to keep it for)
                self.last_routes = routes
                self.last_route_path = normalized
                self.last_route_host = host
                self.last_route = route
                self.last_forwarded = path
        ex.path = path
        ex.upstream = route.upstream
        ex.route = route.name
        return route.handler

    def unrouted(self, ex: Exchange, e: SidecarError) -> Response:
        """The answer to a request refused before or by its route's handler."""
        listener = self.listener
        listener.count_unrouted(e)
        resp = error_response(e)
        unrouted = listener.on_unrouted
        if unrouted is not None:
            # logged once written, with the bytes the app really got (the error's body)
            resp.on_complete = [lambda ok, sent: unrouted(ex, e, sent)]
        return resp

    def unexpected(self) -> Response:
        """A fault of the sidecar's own outside any route: logged, answered, the connection
        closed."""
        log.exception(
            "unexpected error outside any route", extra={"fields": {"client": self.client}}
        )
        resp = error_response(SidecarError("unexpected error in the sidecar"))
        resp.close = True
        return resp

    def begin_drain(self) -> None:
        """Shutting down: answer what was already read, then close (the listener calls this).

        The requests queued behind the one in flight are answered, the last with
        ``Connection: close`` (see ``more_owed``); a request still arriving is received and
        answered too; nothing after those is read. An idle connection keeps reading until the
        listener closes it, so a request that raced the drain is still answered.
        """
        if self.closed or self.input_closed:
            return
        if self.mid_message:
            self.last_request = True  # on_message_complete closes input after it
        elif self.queue or self.state == BUSY:
            self.input_closed = True
            self.pause_reading(INPUT_CLOSED)

    def more_owed(self) -> bool:
        """Whether responses are owed after the one being written (dispatched or arriving)."""
        return bool(self.queue) or (self.mid_message and not self.input_closed)

    # --- responses ---------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until the app reads what was written; an app that stops reading is cut off."""
        try:
            async with asyncio.timeout(self.listener.cfg.idle_timeout):
                await super().drain()
        except TimeoutError:
            raise ConnectionResetError("the app stopped reading its response") from None

    def closed_error(self) -> BaseException:
        return ConnectionResetError("app connection closed")

    def refuse(self, error: SidecarError) -> None:
        """Answer a malformed request and close the connection (nothing after it is trusted)."""
        self.error = None
        if self.closed or self.refused or self.lingering:
            return
        self.refused = self.input_closed = True
        self.pause_reading(INPUT_CLOSED)
        stream = self.stream
        if stream is not None and not stream.failed:
            # the request being answered has a broken body: its handler gets the error while
            # reading it and answers with it; the connection closes after that response
            stream.fail(error)
            return
        self.listener.count_unrouted(error)
        resp = error_response(error)
        resp.close = True
        if self.worker is not None and (self.queue or self.state == BUSY):
            # responses to earlier pipelined requests are owed first
            self.queue.append(resp)
            w = self.next_ready
            if w is not None and not w.done():
                w.set_result(None)
            return
        if self.transport is not None:
            self.flush_writes()  # the responses before it go first
            self.transport.write(refusal_bytes(error.status, resp))
        self.finish()

    def finish(self) -> None:
        """Close after the last response: half-close, then discard input for a moment."""
        transport = self.transport
        if transport is None or self.closed or self.lingering:
            return
        self.input_closed = True
        self.flush_writes()  # the last response goes before the half-close
        try:
            can_linger = transport.can_write_eof()
            if can_linger:
                transport.write_eof()  # sent once the buffered response is flushed
        except (OSError, RuntimeError):
            can_linger = False
        if not can_linger:
            self.close()
            return
        self.lingering = True
        self.state = LINGER
        self.since = self.listener.now
        # read again, to discard (unless a waiting body still holds reading): the app's FIN
        # ends the linger early
        self.resume_reading(INPUT_CLOSED)

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        if abort:
            self.unsent = None
        else:
            self.flush_writes()  # what was written goes before the close
        self.closed = self.input_closed = True
        transport = self.transport
        if transport is not None:
            if abort:
                transport.abort()
            else:
                transport.close()
        self.listener.connection_closed(self)

    def timed_out(self, now: float) -> None:
        """Called by the listener's ticker; enforces header and idle timeouts and the linger."""
        state = self.state
        if state == HEAD:
            if now - self.since > self.listener.cfg.header_timeout:
                self.refuse(RequestTimeout("request head not received in time"))
        elif state == IDLE:
            if now - self.since > self.listener.cfg.idle_timeout:
                self.close()
        elif state == LINGER and now - self.since > LINGER_SECONDS:
            self.close(abort=True)
