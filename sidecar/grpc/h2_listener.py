"""The HTTP/2 front of the gRPC port (``grpc.server: h2``): the app's gRPC calls read and written
at the frame level with the sidecar's own HTTP/2 state machine (:mod:`sidecar.http2`), through
the same route table and filter chains as the grpc.aio listener (:mod:`.listener`), for a
fraction of its CPU per call (docs/grpc.md).

Each call's HEADERS become the :class:`~sidecar.exchange.Exchange` of :mod:`sidecar.grpc.wire`
(metadata as headers, messages as the body: ``bytes`` when the app had sent its one message and
half-closed by the time the call starts, ``grpc-timeout`` as the deadline), and ``host`` is
the ``:authority``, which grpc.aio cannot tell a server: routing by authority works here. The
answer is written as gRPC servers write it: HEADERS with the initial metadata, each message
framed (waiting for the app's flow-control window), then trailers; a trailers-only HEADERS
block when there is neither a message nor initial metadata.

The sidecar's own services (health, admin API, reflection: :mod:`.services`) are answered here
too, by the services themselves (:attr:`~.control.ControlServices.serve`): these calls are not
the app's traffic and run no filter chain, as with the grpc.aio listener. Nothing here imports
grpcio: a sidecar on this front loads it only for a gRPC upstream.

Cleartext HTTP/2 with prior knowledge only (the port is loopback, as gRPC channels connect to
it). No ``grpc-encoding``: a call that names one is UNIMPLEMENTED, a compressed message INTERNAL.
The deadline is the app's to enforce (its gRPC library resets the stream when it passes, which
cancels the call); the upstream call gets it too. Metadata past ``max_metadata_size`` closes the
connection (a header block over the advertised SETTINGS_MAX_HEADER_LIST_SIZE is refused with
GOAWAY(ENHANCE_YOUR_CALM), counted as the ``header_block`` flood).
"""

from __future__ import annotations

__all__ = ["H2GrpcListener"]

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..app_quiet import AppActivity
from ..errors import HeadersTooLarge, SidecarError
from ..exchange import Exchange, Headers, Response, close_body, completed
from ..fdlimit import UNLIMITED, ConnectionCap
from ..http2.connection import Connection
from .control import ControlServices, ServedServices
from .dispatch import Unrouted, dispatch
from .h2_connection import H2Connection, H2Stream, StreamGone
from .h2_messages import CONTENT_TYPE, read_request, response_head, trailers_block
from .metadata import response_metadata
from .routes import GrpcRoutes
from .wire import GRPC_LISTENER, error_response

if TYPE_CHECKING:
    from ..api import ControlView
    from ..config.models import GrpcListenerConfig
    from ..telemetry.metrics import Metrics

log = logging.getLogger("sidecar.grpc")

#: each stream's receive window: what one call may have in flight toward the sidecar.
STREAM_WINDOW = 1 << 20
#: the connection's receive window (all its calls together).
CONNECTION_WINDOW = 16 << 20
#: after the grace, cut calls get this long to unwind before the sidecar closes its channels.
DRAIN_UNWIND = 1.0


class EncodingUnsupported(SidecarError):
    """The app compressed its call (``grpc-encoding``); this listener takes identity only."""

    status, grpc_code, code = 415, 12, "bad_request"


class MessageTooLarge(SidecarError):
    """A response message over ``grpc.max_send_message_size``."""

    status, grpc_code, code = 502, 8, "body_too_large"


class H2GrpcListener:
    """The gRPC port on h2: server, connections, route table, calls in flight, draining."""

    def __init__(
        self,
        cfg: GrpcListenerConfig,
        routes: GrpcRoutes,
        metrics: Metrics,
        sidecar: ControlView,
        control: ControlServices | None = None,
    ) -> None:
        self.cfg = cfg
        #: the sidecar's own services, served before the proxy (``None``: proxy only).
        self.control = control
        self._own_prefixes = control.prefixes if control is not None else ()
        #: the live route table; a reload swaps it (calls in flight keep their handlers).
        self.routes = routes
        self.metrics = metrics
        self.sidecar = sidecar
        self.port = 0
        self.active = 0
        #: calls begun, ever (see :meth:`app_activity`).
        self.began = 0
        self.draining = False
        self.max_receive = cfg.max_receive_message_size
        self.max_send = cfg.max_send_message_size
        self.connection_window = CONNECTION_WINDOW
        self.connections: set[H2Connection] = set()
        #: app connections open at once (the sidecar sets ``cap.limit`` at start, as for HTTP)
        self.cap = ConnectionCap(
            GRPC_LISTENER,
            cfg.max_connections or UNLIMITED,
            metrics.connections_refused.labels(GRPC_LISTENER, "limit").inc,
        )
        self.server: asyncio.Server | None = None
        #: the sidecar's own services, answering here (``None``: proxy only).
        self.services: ServedServices | None = None
        self._idle = asyncio.Event()
        #: called for a call that matched no route (access log).
        self.on_unrouted: Unrouted | None = None

    def new_h2(self) -> Connection:
        """The state machine of a new app connection: its first SETTINGS announce the stream
        window, the concurrency and the metadata bound of this listener; what the listener sends
        was checked as it was built (metadata.response_metadata), what the app sends is checked
        by the state machine (RFC 9113 header rules)."""
        cfg = self.cfg
        return Connection(
            client_side=False,
            initial_window_size=STREAM_WINDOW,
            max_concurrent_streams=cfg.max_concurrent_streams,
            max_header_list_size=cfg.max_metadata_size,
            # a call whose metadata is over the limit is refused on its own (too_large) if its
            # compressed block is at most twice the limit (a block is about the size of the
            # list it decodes to, or less); a larger block ends the connection as a flood
            max_header_block_size=2 * cfg.max_metadata_size,
        )

    async def start(self, host: str, port: int) -> None:
        if self.control is not None:
            self.services = self.control.serve(self.sidecar)
        try:
            loop = asyncio.get_running_loop()
            self.server = await loop.create_server(
                lambda: H2Connection(self), host, port, backlog=1024, reuse_address=True
            )
        except BaseException:
            await self._close_own()
            raise
        self.port = self.server.sockets[0].getsockname()[1]

    # --- calls -------------------------------------------------------------------------------

    def begin(self, stream: H2Stream, headers: list[tuple[bytes, bytes]]) -> None:
        """A call's HEADERS came: check them and start its task."""
        self.began += 1
        head = read_request(headers)
        if not head.content_type.startswith(CONTENT_TYPE):
            _answer_http(stream, b"415")
            return
        if head.encoding and head.encoding != b"identity":
            encoding = head.encoding.decode("latin-1")[:50]
            self.refuse(stream, EncodingUnsupported(f"grpc-encoding {encoding!r} is not taken"))
            return
        loop = stream.conn.loop  # held: get_running_loop() is a getpid() system call on 3.11
        # the app's deadline counts from its HEADERS' arrival, not from when the call's task runs
        deadline = None if head.timeout is None else loop.time() + head.timeout
        stream.task = loop.create_task(self._call(stream, head, deadline))

    async def _call(self, stream: H2Stream, head: Any, deadline: float | None) -> None:
        path = head.path
        # the whole request already here (a unary call's, usually in the same read as its
        # HEADERS): one message as bytes, which the gRPC adapter sends as a single-request call
        whole = stream.whole_request()
        ex = Exchange(
            "POST",
            path,
            Headers.wrap(head.metadata),
            body=stream if whole is None else whole,
            body_length=None if whole is None else len(whole),
            client=stream.conn.client,
            listener=GRPC_LISTENER,
            http_version="2",
            start=perf_counter(),
        )
        ex.host = head.authority
        ex.deadline = deadline
        # counted once running: a task cancelled before its first step never runs this body
        self.active += 1
        try:
            if self.services is not None and path.startswith(self._own_prefixes):
                try:
                    resp = await self.services.answer(ex)
                except SidecarError as e:
                    resp = error_response(e)
            else:
                resp = await dispatch(self.routes, ex, self.metrics, self.on_unrouted)
            await _write(stream, ex, resp, self.max_send)
        finally:
            self.active -= 1
            stream.conn.forget(stream)
            if self.draining and not self.active:
                self._idle.set()

    def too_large(self, stream: H2Stream, size: int, path: bytes) -> None:
        """A call whose metadata is over ``max_metadata_size``: answered RESOURCE_EXHAUSTED at
        once, saying so (the app's library may have let it through: nothing stops a client from
        sending more than the SETTINGS_MAX_HEADER_LIST_SIZE it was told), counted and logged
        as a call refused before its route; the connection and its other calls go on."""
        self.began += 1
        limit = self.cfg.max_metadata_size
        error = HeadersTooLarge(
            f"request metadata of {size} bytes (names, values and 32 each, as HTTP/2 counts "
            f"them) is over grpc.max_metadata_size, {limit} bytes"
        )
        self.metrics.requests.labels(GRPC_LISTENER, "", "", str(error.grpc_code)).inc()
        self.metrics.errors.labels(GRPC_LISTENER, "", error.code).inc()
        if self.on_unrouted is not None:
            ex = Exchange(
                "POST",
                path.decode("latin-1"),
                Headers(),
                client=stream.conn.client,
                listener=GRPC_LISTENER,
                http_version="2",
                start=perf_counter(),
            )
            self.on_unrouted(ex, error)
        self.refuse(stream, error)

    def refuse(self, stream: H2Stream, error: SidecarError) -> None:
        """Answer ``error`` at once (a bad message, an encoding) and cancel the call's task."""
        try:
            block = trailers_block(error_response(error).trailers or Headers(), only=True)
            if stream.sent_head:
                block = block[2:]
            stream.send_headers(block, end=True)
        except StreamGone:
            pass
        stream.finish()
        stream.conn.forget(stream)
        if stream.task is not None:
            stream.task.cancel()

    # --- shutdown ----------------------------------------------------------------------------

    def hold_for_app(self) -> None:
        """SIGTERM while the app may still call out (``shutdown.app_quiet_period``): health
        turns NOT_SERVING and its ``Watch`` streams end (a watch would never let the app look
        quiet), and nothing else changes: connections stay open and take new calls. No GOAWAY
        until the drain: a gRPC client moves its calls to a new connection on any GOAWAY, so
        one now would only add reconnects (and a GOAWAY racing a call is reported as
        UNAVAILABLE by some clients)."""
        if self.services is not None:
            self.services.drain()

    def app_activity(self) -> AppActivity:
        """Open app connections, calls running, and the ``began`` count."""
        return AppActivity(len(self.connections), self.active, self.began)

    def stop_accepting(self) -> None:
        """No new connections; open ones get GOAWAY naming their last call (new calls on them
        are refused, which gRPC clients retry elsewhere); health turns NOT_SERVING and its
        ``Watch`` streams end."""
        self.draining = True
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.refuse_new()
        if self.services is not None:
            self.services.drain()

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` for calls in flight, cut the rest; say how many were cut."""
        if not self.draining:
            self.stop_accepting()
        if self.active:
            self._idle.clear()
            try:
                async with asyncio.timeout(grace):
                    await self._idle.wait()
            except TimeoutError:
                pass
        left = self.active
        if left:
            for conn in list(self.connections):
                for stream in list(conn.streams.values()):
                    if stream.task is not None:
                        stream.task.cancel()
            try:
                async with asyncio.timeout(DRAIN_UNWIND):
                    while self.active:
                        self._idle.clear()
                        await self._idle.wait()
            except TimeoutError:
                log.warning("gRPC calls did not unwind in time")
        for conn in list(self.connections):
            conn.close()
        await self._close_own()
        return left

    async def _close_own(self) -> None:
        if self.services is not None:
            await self.services.aclose()


async def _write(stream: H2Stream, ex: Exchange, resp: Response, max_send: int) -> None:
    """Write ``resp`` to the app: initial metadata, messages (each within the app's window),
    then the status; the same outcomes as the grpc.aio listener's."""
    sent = 0
    ok = cut = False
    try:
        initial = response_metadata(resp.headers) if len(resp.headers) else ()
        body = resp.body
        try:
            if isinstance(body, bytes):
                if body:  # a body held whole (a plugin's answer): one message
                    if len(body) > max_send:
                        raise MessageTooLarge(f"a response message of {len(body)} bytes")
                    stream.send_headers(response_head(initial))
                    await stream.send_message(body)
                    sent = len(body)
            else:
                async for message in body:
                    if len(message) > max_send:
                        raise MessageTooLarge(
                            f"a response message of {len(message)} bytes is over the limit "
                            f"({max_send})"
                        )
                    if not stream.sent_head:
                        stream.send_headers(response_head(initial))
                    await stream.send_message(message)
                    sent += len(message)
        except SidecarError as e:
            log.info(
                "response stream aborted",
                extra={"fields": {"upstream": ex.upstream, "reason": e.code}},
            )
            resp.trailers = error_response(e).trailers
            cut = True
        if initial and not stream.sent_head:
            stream.send_headers(response_head(initial))
        if resp.trailers is None:
            resp.trailers = error_response(
                SidecarError("the upstream's call ended without a status")
            ).trailers
        assert resp.trailers is not None
        stream.send_headers(trailers_block(resp.trailers, only=not stream.sent_head), end=True)
        ok = True
    except asyncio.CancelledError:
        raise
    except StreamGone:
        pass  # the app reset the call or left: it saw its outcome
    except Exception:
        log.debug("gRPC response not written in full", exc_info=True)
    finally:
        stream.finish()
        if cut or not ok:
            await close_body(resp)
        completed(resp, ok, sent)


def _answer_http(stream: H2Stream, status: bytes) -> None:
    """A request that is not gRPC: a bare HTTP status (415 for a wrong content type)."""
    try:
        stream.send_headers([(b":status", status)], end=True)
    except StreamGone:
        pass
    stream.finish()
    stream.conn.forget(stream)
