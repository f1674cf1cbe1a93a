"""The inbound mTLS listener: peers call the app through it (default 0.0.0.0:15006).

:class:`InboundListener` is the HTTP/1.1 listener (:class:`~.http.HttpListener`: the same parser,
limits, timeouts, routing and drain) behind a TLS handshake that requires a client certificate
from ``inbound.tls.ca``. It accepts sockets itself and runs each handshake in a task
(``loop.connect_accepted_socket(..., ssl=context)``), for three reasons:

- a refused handshake (no client certificate, a certificate from another CA, an expired one,
  plain HTTP on the TLS port) is seen here, with the peer's address, and logged once per
  connection with OpenSSL's reason and counted in ``sidecar_tls_handshake_failures_total``.
  With ``create_server(ssl=...)`` asyncio and uvloop drop such a connection silently;
- each handshake takes the context current at accept time (:attr:`TlsMaterial.context`), so a
  rotated certificate is served from the next connection on and established connections keep
  theirs; no SNI-callback trick is needed, and it works the same on asyncio and uvloop;
- the app protocol (:class:`InboundConnection`) only ever sees a verified peer: its
  ``connection_made`` reads the peer's SPIFFE ID once per connection, and every exchange of the
  connection carries it in ``exchange.peer_identity`` for the route's filters (allow-list,
  identity header).

A watch task re-reads the certificate files once a second (:meth:`TlsMaterial.refresh`).

Not here: which peers a route allows and the header the app gets (:mod:`sidecar.tls.peer`,
:mod:`sidecar.tls.identity`), building the context (:mod:`sidecar.tls.contexts`).
"""

from __future__ import annotations

__all__ = ["INBOUND_FRONT", "InboundConnection", "InboundListener", "handshake_failure"]

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import TYPE_CHECKING

from ..api.traits import FrontTraits
from ..exchange import Exchange
from ..tls.spiffe import peer_spiffe_id
from .http import HttpListener
from .http_connection import HttpConnection

if TYPE_CHECKING:
    from ..config.models import InboundConfig
    from ..routing import RouteTable
    from ..telemetry.metrics import Metrics
    from ..tls.material import TlsMaterial

log = logging.getLogger("sidecar.listener")

#: The peer-facing mTLS port's traits: its callers are authenticated peers.
INBOUND_FRONT = FrontTraits("inbound", peer_identity=True)

#: OpenSSL's verify codes (``X509_V_ERR_*``) for a certificate no trusted CA signed.
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})
#: After ``accept`` fails (out of file descriptors), wait this long before accepting again.
ACCEPT_BACKOFF = 0.5


def handshake_failure(error: BaseException) -> tuple[str, str]:
    """``(reason, detail)`` of a failed handshake: a short, bounded reason for the metric and a
    sentence for the log."""
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = f"client certificate refused: {getattr(error, 'verify_message', error)}"
        code = getattr(error, "verify_code", 0)
        if code == 10:
            return "expired", detail
        if code == 9:
            return "not_yet_valid", detail
        if code in _UNTRUSTED:
            return "untrusted", detail
        return "verify_failed", detail
    if isinstance(error, ssl.SSLError):
        why = getattr(error, "reason", None) or ""
        text = error.strerror or str(error)
        if why == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "no_certificate", "the peer presented no client certificate"
        if why == "HTTP_REQUEST":
            return "plain_http", "the peer spoke plain HTTP to the mTLS port"
        if "ALERT" in why:
            return "peer_refused", f"the peer ended the handshake with an alert: {text}"
        if isinstance(error, ssl.SSLEOFError):
            return "closed", "the peer closed the connection during the handshake"
        return "protocol", f"TLS error: {text}"
    if isinstance(error, TimeoutError) or (
        isinstance(error, ConnectionAbortedError) and "longer than" in str(error)
    ):
        return "timeout", "the handshake did not complete in time"
    if isinstance(error, ConnectionError | EOFError):
        return "closed", "the peer closed the connection during the handshake"
    return "error", f"{type(error).__name__}: {error}"


class InboundConnection(HttpConnection):
    """An HTTP/1.1 connection from a verified peer: every exchange carries its SPIFFE ID."""

    def __init__(self, listener: HttpListener) -> None:
        super().__init__(listener)
        #: the peer's SPIFFE ID (``None``: its certificate carries none; the routes refuse it).
        self.peer_identity: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # once per connection: OpenSSL verified the chain, the identity is its URI SAN
        self.peer_identity, _ = peer_spiffe_id(transport.get_extra_info("peercert"))
        super().connection_made(transport)

    def build_exchange(self) -> Exchange:
        ex = super().build_exchange()
        ex.peer_identity = self.peer_identity
        return ex


def _listening_socket(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.create_server(address[:2], family=family, backlog=1024)
    sock.setblocking(False)
    return sock


class InboundListener(HttpListener):
    """The mTLS port in front of the app (see the module docstring)."""

    #: seconds between two looks at the certificate files.
    tls_check_interval = 1.0

    def __init__(
        self,
        cfg: InboundConfig,
        routes: RouteTable,
        metrics: Metrics,
        tls: TlsMaterial,
        name: str = "inbound",
    ) -> None:
        super().__init__(cfg, routes, metrics, name)
        #: the certificate, key and CA new handshakes use (replaced when a reload moves them).
        self.tls = tls
        self.handshake_timeout = cfg.header_timeout
        self.sock: socket.socket | None = None
        #: handshakes in progress (their tasks), cancelled when the drain starts.
        self.handshakes: set[asyncio.Task[None]] = set()
        self._acceptor: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._failures = metrics.tls_handshake_failures

    async def _listen(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        self.sock = _listening_socket(host, port)
        self._acceptor = loop.create_task(self._accept(self.sock))
        self._watcher = loop.create_task(self._watch())

    @property
    def port(self) -> int:
        assert self.sock is not None
        return int(self.sock.getsockname()[1])

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(sock)
            except OSError as e:  # EMFILE and the like: the connections we have go on
                log.error(
                    "inbound listener cannot accept connections",
                    extra={"fields": {"listener": self.name, "reason": e.strerror or str(e)}},
                )
                await asyncio.sleep(ACCEPT_BACKOFF)
                continue
            task = loop.create_task(self._handshake(conn, address))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

    async def _handshake(self, conn: socket.socket, address: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: InboundConnection(self),
                conn,
                ssl=self.tls.context,
                ssl_handshake_timeout=self.handshake_timeout,
            )
        except asyncio.CancelledError:
            conn.close()
            raise
        except Exception as e:
            conn.close()  # already closed by the loop; a no-op then
            self._refused(address, e)

    def _refused(self, address: tuple[str, int], error: Exception) -> None:
        reason, detail = handshake_failure(error)
        self._failures.labels(self.name, reason).inc()
        # a peer that hangs up without a word (a TCP health check) is no refusal worth a warning
        level = logging.DEBUG if reason == "closed" else logging.WARNING
        if log.isEnabledFor(level):
            log.log(
                level,
                "TLS handshake refused",
                extra={
                    "fields": {
                        "listener": self.name,
                        "peer": f"{address[0]}:{address[1]}",
                        "reason": reason,
                        "detail": detail,
                    }
                },
            )

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.tls_check_interval)
            self.tls.refresh(force=True)  # this loop is the pace: once per interval

    def stop_accepting(self) -> None:
        super().stop_accepting()
        if self._watcher is not None:
            self._watcher.cancel()
        sock = self.sock
        if self._acceptor is not None and not self._acceptor.done():
            # the socket closes once the acceptor unregistered it from the loop: closing it
            # under a pending accept could let a new socket reuse the descriptor first
            if sock is not None:
                self._acceptor.add_done_callback(lambda _: sock.close())
            self._acceptor.cancel()
        elif sock is not None:
            sock.close()
        # a handshake still in progress carries no request yet: it is refused like a late
        # connection would be
        for task in list(self.handshakes):
            task.cancel()

    async def drain(self, grace: float) -> int:
        left = await super().drain(grace)
        # stop_accepting cancelled them already; a drain without it must not wait forever
        for task in (self._acceptor, self._watcher, *self.handshakes):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return left
