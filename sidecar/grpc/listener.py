"""The app-facing gRPC listener (``grpc:``, default 127.0.0.1:15002): a grpc.aio server that
passes every call, whatever its RPC kind, through the route's filter chain as raw messages.

gRPC's wire format does not tell a server whether a method streams, so every call is answered
by one ``stream_stream`` handler with no (de)serialisation: a unary call is a stream of one
message each way (answering ``unary_unary`` would break every streaming method). The
sidecar's own services (:func:`sidecar.grpc.services.add_services`: health, admin, reflection)
are added to the server first, so grpcio finds them before this generic handler.

Per call it builds the :class:`~sidecar.exchange.Exchange` of :mod:`sidecar.grpc.wire`: the
app's metadata as headers, its messages as the body (read only as the upstream takes them), its
deadline as loop time. It routes (:mod:`sidecar.grpc.routes`), runs the chain, and writes the
:class:`~sidecar.exchange.Response`: initial metadata, each message awaited in turn (gRPC's flow
control: nothing piles up when the app reads slowly), then the status code, details and trailing
metadata as the chain left them. When the app cancels, grpcio cancels this call's task: the
chain and the upstream call below it are cancelled with it. An unknown service is UNIMPLEMENTED
with ``x-sidecar-error: no_route``.

Limits (``grpc.*``) are grpcio's server options: message sizes (RESOURCE_EXHAUSTED past them),
metadata size and concurrent streams per connection. Draining stops accepting calls at once and
gives those in flight the grace. Not here: routing, the upstream side (:mod:`.adapter`).
"""

from __future__ import annotations

__all__ = ["GrpcListener"]

import asyncio
import errno
import functools
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any

import grpc

from ..app_quiet import AppActivity
from ..errors import SidecarError
from ..exchange import Exchange, Response, close_body, completed
from .control import ControlServices, ServicesHandle
from .dispatch import Unrouted, dispatch
from .metadata import headers_from_metadata, response_metadata, split_status
from .routes import GrpcRoutes, authority_of
from .wire import GRPC_LISTENER, error_response

if TYPE_CHECKING:
    from ..api import ControlView
    from ..config.models import GrpcListenerConfig
    from ..telemetry.metrics import Metrics

log = logging.getLogger("sidecar.grpc")

#: method paths whose grpcio handler objects are kept (the app chooses paths: bounded).
MAX_HANDLERS = 1024
#: after the grace, cut calls get this long to unwind before the sidecar closes its channels.
DRAIN_UNWIND = 1.0
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_UNKNOWN = grpc.StatusCode.UNKNOWN


class GrpcListener(grpc.GenericRpcHandler):  # type: ignore[misc]
    """The gRPC port: its server, the route table, calls in flight, draining."""

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
        #: the live route table; a reload swaps it (calls in flight keep their handlers).
        self.routes = routes
        self.metrics = metrics
        self.sidecar = sidecar
        self.server: Any = None
        self.services: ServicesHandle | None = None
        self.port = 0
        self.active = 0
        #: calls begun, ever (see :meth:`app_activity`).
        self.began = 0
        self.draining = False
        self._idle: asyncio.Event | None = None
        self._handlers: dict[str, Any] = {}
        #: called for a call that matched no route (access log).
        self.on_unrouted: Unrouted | None = None

    async def start(self, host: str, port: int) -> None:
        cfg = self.cfg
        self.server = server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", cfg.max_receive_message_size),
                ("grpc.max_send_message_length", cfg.max_send_message_size),
                ("grpc.max_metadata_size", cfg.max_metadata_size),
                ("grpc.absolute_max_metadata_size", cfg.max_metadata_size),
                ("grpc.max_concurrent_streams", cfg.max_concurrent_streams),
                # never share a port with another process (grpcio sets SO_REUSEPORT by default,
                # so a second sidecar on 15002 would silently take half the calls)
                ("grpc.so_reuseport", 0),
            ]
        )
        # the sidecar's own services first: grpcio asks handlers in the order they were added
        if self.control is not None:
            self.services = self.control.add(server, self.sidecar)
        server.add_generic_rpc_handlers([self])
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:
            bound = 0
        if not bound:
            await self._close_services()
            raise OSError(errno.EADDRINUSE, "address in use or not available")
        self.port = bound
        self._idle = asyncio.Event()
        await server.start()

    # --- calls -------------------------------------------------------------------------------

    def service(self, handler_call_details: Any) -> Any:
        """grpcio's lookup: one stream-stream handler per method path, kept (bounded)."""
        method: str = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            handler = grpc.stream_stream_rpc_method_handler(functools.partial(self._call, method))
            if len(self._handlers) < MAX_HANDLERS:
                self._handlers[method] = handler
        return handler

    async def _call(self, method: str, messages: Any, context: Any) -> None:
        ex = Exchange(
            "POST",
            method,
            headers_from_metadata(context.invocation_metadata()),
            body=messages,
            body_length=None,
            client=_client(context.peer()),
            listener=GRPC_LISTENER,
            http_version="2",
            start=perf_counter(),
        )
        ex.host = authority_of(context)
        remaining = context.time_remaining()
        if remaining is not None:
            ex.deadline = asyncio.get_running_loop().time() + remaining
        self.began += 1
        self.active += 1
        try:
            resp = await dispatch(self.routes, ex, self.metrics, self.on_unrouted)
            await _write(context, ex, resp)
        finally:
            self.active -= 1
            if self.draining and not self.active and self._idle is not None:
                self._idle.set()

    # --- shutdown ----------------------------------------------------------------------------

    def hold_for_app(self) -> None:
        """SIGTERM while the app may still call out (``shutdown.app_quiet_period``): health
        turns NOT_SERVING and its ``Watch`` streams end; the server keeps taking calls."""
        if self.services is not None:
            self.services.drain()

    def app_activity(self) -> AppActivity:
        """Calls running and the ``began`` count; grpcio hides its connections (0)."""
        return AppActivity(0, self.active, self.began)

    def stop_accepting(self) -> None:
        """Draining begins: the sidecar's health service turns NOT_SERVING and its ``Watch``
        streams end. The server stops taking calls in :meth:`drain`, which the sidecar starts
        right after (stopping grpcio's server and waiting for its calls are one step there)."""
        self.draining = True
        if self.services is not None:
            # health says NOT_SERVING and its Watch streams end, so they do not hold the grace
            self.services.drain()

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` for calls in flight, cut the rest; say how many were cut."""
        self.draining = True
        server = self.server
        if server is None:
            return 0
        # grpcio stops taking new calls at once and cancels those left after the grace
        stopping = asyncio.ensure_future(server.stop(grace))
        idle = self._idle
        if self.active and idle is not None:
            idle.clear()
            try:
                async with asyncio.timeout(grace):
                    await idle.wait()
            except TimeoutError:
                pass
        left = self.active
        try:
            async with asyncio.timeout(grace + DRAIN_UNWIND):
                await stopping
        except TimeoutError:
            log.warning("the gRPC server did not stop in time")
        await self._close_services()
        return left

    async def _close_services(self) -> None:
        if self.services is not None:
            await self.services.aclose()


async def _write(context: Any, ex: Exchange, resp: Response) -> None:
    """Write ``resp`` to the app: initial metadata, messages (each write awaited), status."""
    sent = 0
    ok = False
    try:
        if len(resp.headers):
            await context.send_initial_metadata(response_metadata(resp.headers))
        body = resp.body
        if isinstance(body, bytes):
            if body:  # a body held whole (a plugin's answer): one message
                await context.write(body)
                sent = len(body)
        else:
            try:
                async for message in body:
                    await context.write(message)
                    sent += len(message)
            except SidecarError as e:
                log.info(
                    "response stream aborted",
                    extra={"fields": {"upstream": ex.upstream, "reason": e.code}},
                )
                resp.trailers = error_response(e).trailers
        if resp.trailers is None:
            resp.trailers = error_response(
                SidecarError("the upstream's call ended without a status")
            ).trailers
        trailers = resp.trailers
        assert trailers is not None
        code, details, trailing = split_status(trailers)
        context.set_code(_CODES.get(code, _UNKNOWN))
        if details:
            context.set_details(details)
        if trailing:
            context.set_trailing_metadata(trailing)
        ok = True
    except asyncio.CancelledError:
        raise
    except Exception:
        # the app's call ended under us (grpcio refuses further writes): it saw its outcome
        log.debug("gRPC response not written in full", exc_info=True)
    finally:
        if not ok:
            await close_body(resp)
        completed(resp, ok, sent)


def _client(peer: str | None) -> str:
    """``127.0.0.1:5000`` from grpcio's ``ipv4:127.0.0.1:5000`` (``[::1]:5000`` for ipv6)."""
    if not peer:
        return ""
    kind, _, address = peer.partition(":")
    return address if kind in ("ipv4", "ipv6") else peer
