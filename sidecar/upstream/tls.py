"""TLS toward an upstream (``https://`` URLs): the client context and readable handshake errors.

The context verifies the server against the system CAs or ``tls.ca``, checks the host name
(``tls.server_name`` or the URL's host, also sent as SNI), offers only HTTP/1.1 over ALPN and
presents a client certificate when ``tls.cert``/``tls.key`` are set (mTLS). It is built once per
pool; when it is built from files (``tls.ca``, ``tls.cert``) or checks a SPIFFE ID
(``tls.spiffe_id``) it is a :class:`~sidecar.tls.contexts.RotatingClientContext`, which follows
rotated files and checks the server's SPIFFE ID after the handshake. Not here: the inbound mTLS
listener.
"""

from __future__ import annotations

__all__ = ["client_ssl_context", "describe_tls_error"]

import ssl

from ..config.models import UpstreamTLS
from ..tls.contexts import RotatingClientContext


def client_ssl_context(tls: UpstreamTLS | None) -> ssl.SSLContext:
    """A client context: system CAs or ``tls.ca``, host name checks, optional client cert."""
    if tls is not None and (tls.ca or tls.cert or tls.spiffe_id):
        return RotatingClientContext(tls)
    ctx = ssl.create_default_context(cafile=tls.ca if tls is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if tls is not None:
        if tls.cert is not None:
            ctx.load_cert_chain(tls.cert, tls.key)
        if not tls.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    return ctx


def describe_tls_error(e: ssl.SSLError, where: str, server_name: str | None) -> str:
    """One line saying why the handshake with ``where`` failed, for ``upstream_connect``."""
    name = f" as {server_name!r}" if server_name else ""
    if isinstance(e, ssl.SSLCertVerificationError):
        # verify_message says what was wrong: "Hostname mismatch, certificate is not valid
        # for 'x'", "self-signed certificate", "unable to get local issuer certificate"...
        why = getattr(e, "verify_message", None) or e.reason or str(e)
        return f"TLS handshake with {where}{name} failed: certificate verify failed: {why}"
    return f"TLS handshake with {where}{name} failed: {e.reason or e}"
