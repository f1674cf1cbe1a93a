"""The ``SSLContext`` builders: the inbound listener's (mTLS server) and an upstream's (client,
optionally checking the server's SPIFFE ID), and the client context that follows rotated files.

- :func:`server_context`: TLS 1.2 or later, a client certificate required (``CERT_REQUIRED``) and
  verified against ``inbound.tls.ca`` only (never the system CAs: the mesh CA decides who may
  call), ALPN ``http/1.1``, and no session tickets, so a connection proves its certificate
  afresh rather than riding a session from before a rotation or an expiry.
- :func:`client_context`: what ``upstreams.X.tls`` says: the CA (or the system CAs), the client
  certificate, SNI and host name checks. With ``tls.spiffe_id`` the host name check is replaced
  by a SPIFFE check: SPIFFE workload certificates usually carry no DNS name, and the identity to
  check is the URI SAN. The chain is still verified by OpenSSL; right after a successful
  handshake :class:`SpiffeCheckedObject` reads the server's SPIFFE ID and fails the handshake
  (``SSLCertVerificationError``, so the pool reports ``upstream_connect`` with the reason) when it
  does not match: no byte of the request is sent to a server with the wrong identity.
- :class:`RotatingClientContext`: the context an upstream's pool holds. asyncio and uvloop call
  its ``wrap_bio`` once per new connection; it hands out an ``SSLObject`` of the current context
  of a :class:`~.material.TlsMaterial`, checking the files at most once a second, so a rotated
  client certificate or CA is used from the next connection on, and pooled connections live on.

Not here: when files are re-read (:mod:`.material`), the listener
(:mod:`sidecar.listeners.inbound`).
"""

from __future__ import annotations

__all__ = [
    "ClientContext",
    "RotatingClientContext",
    "SpiffeCheckedObject",
    "client_context",
    "server_context",
    "server_material",
]

import ssl
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ConfigProblem
from .certinfo import CertInfo
from .material import TlsFileError, TlsMaterial, load_ca, load_pair
from .spiffe import AllowList, peer_spiffe_id

if TYPE_CHECKING:
    from ..config.models import InboundTLS, UpstreamTLS

ALPN = ["http/1.1"]


def server_context(cert: str, key: str, ca: str) -> tuple[ssl.SSLContext, CertInfo]:
    """The inbound listener's context and its certificate's details (:class:`TlsFileError`)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(ALPN)
    # a peer proves its certificate on every connection: no session tickets (TLS 1.3, 1.2), so
    # only TLS 1.2 session-ID resumption remains, bounded by OpenSSL's 5-minute server cache and
    # by the context itself (a rotation starts a new cache)
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 0
    info = load_pair(ctx, cert, key)
    load_ca(ctx, ca)
    return ctx, info


def server_material(tls: InboundTLS, file: str) -> TlsMaterial:
    """The inbound listener's material; a file that cannot be used is a config problem at its
    key (``inbound.tls.key: /etc/sidecar/tls.key: it is not the private key of the
    certificate``), so start-up stops and a reload is refused with the reason."""
    try:
        return TlsMaterial(
            lambda: server_context(tls.cert, tls.key, tls.ca),
            (tls.cert, tls.key, tls.ca),
            labels={"listener": "inbound"},
            cert_path=tls.cert,
        )
    except TlsFileError as e:
        raise ConfigError([ConfigProblem(file, f"inbound.tls.{e.key}", str(e))]) from None


class SpiffeCheckedObject(ssl.SSLObject):
    """An ``SSLObject`` whose handshake also requires the server's SPIFFE ID to be allowed."""

    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the handshake is done
        allow = getattr(self.context, "expected_spiffe", None)
        if allow is None:
            return
        seen, problem = peer_spiffe_id(self.getpeercert())
        if seen is not None and allow.allows(seen):
            return
        expected = " or ".join(allow.patterns)
        why = (
            f"the upstream presented the SPIFFE ID {seen}, expected {expected}"
            if seen is not None
            else f"{problem}, expected the SPIFFE ID {expected}"
        )
        error = ssl.SSLCertVerificationError(ssl.SSL_ERROR_SSL, why)
        error.verify_message = why
        error.verify_code = 0
        error.reason = "SPIFFE_ID_MISMATCH"
        raise error


class ClientContext(ssl.SSLContext):
    """A client context that may carry the SPIFFE IDs its server must have."""

    expected_spiffe: AllowList | None = None


def client_context(tls: UpstreamTLS) -> tuple[ssl.SSLContext, CertInfo | None]:
    """A context for ``upstreams.X.tls`` (:class:`TlsFileError` naming the file at fault)."""
    ctx = ClientContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(ALPN)
    if tls.ca is not None:
        load_ca(ctx, tls.ca)
    else:
        ctx.load_default_certs()
    info = None
    if tls.cert is not None and tls.key is not None:
        info = load_pair(ctx, tls.cert, tls.key)
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif tls.spiffe_id is not None:
        # the chain is verified (CERT_REQUIRED stays); the identity is the URI SAN, not a name
        ctx.check_hostname = False
        ctx.expected_spiffe = AllowList([tls.spiffe_id])
        ctx.sslobject_class = SpiffeCheckedObject
    return ctx, info


class RotatingClientContext(ssl.SSLContext):
    """Given to a pool as its context: every new connection gets an ``SSLObject`` of the
    current :class:`TlsMaterial`, whose files are checked at most once a second."""

    material: TlsMaterial

    def __new__(cls, *args: Any, **kwargs: Any) -> RotatingClientContext:
        return super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)

    def __init__(self, tls: UpstreamTLS, name: str = "") -> None:
        files = [p for p in (tls.ca, tls.cert, tls.key) if p is not None]
        self.material = TlsMaterial(
            lambda: client_context(tls), files, labels={"upstream": name}, cert_path=tls.cert
        )

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        material = self.material
        material.refresh()
        return material.context.wrap_bio(incoming, outgoing, server_side, server_hostname, session)
