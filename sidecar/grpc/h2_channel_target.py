"""What a gRPC upstream's channel (:mod:`.h2_channel`) is built from, read once from its
config: address, ``:authority``, TLS settings, timeouts, keepalive and message limits; and the
TLS context it connects with.

``grpc://host:port`` is plaintext, ``grpcs://host:port`` TLS (with no ``tls`` section: the
system CAs and the URL's host). ``:authority`` is ``upstream.host`` when set, else the URL's
``host:port``. The context is an HTTP upstream's (:func:`sidecar.tls.contexts.client_context`:
``tls.ca``, the client certificate, ``tls.verify``, the ``tls.spiffe_id`` check after the
handshake), offering ``h2`` instead of ``http/1.1`` over ALPN. Not here: connecting.
"""

from __future__ import annotations

__all__ = ["ChannelTarget", "channel_target", "h2_context"]

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config.models import UpstreamConfig, UpstreamTLS
from ..tls.certinfo import CertInfo
from ..tls.contexts import client_context
from .channels import SCHEMES, ChannelConfigError, GrpcUpstreamOptions


@dataclass(frozen=True)
class ChannelTarget:
    """What a channel is built from (read once from the upstream's config)."""

    host: str
    port: int
    #: ``host:port`` as logs and errors show it.
    target: str
    authority: str
    tls: UpstreamTLS | None
    server_name: str | None
    connect_timeout: float
    max_reconnect_backoff: float
    #: ``(keepalive_time, keepalive_timeout, keepalive_permit_without_calls)``; ``None``: off.
    keepalive: tuple[float, float, bool] | None
    max_send_message_size: int
    max_receive_message_size: int


def channel_target(up: UpstreamConfig, options: GrpcUpstreamOptions) -> ChannelTarget:
    """The channel an upstream needs; :class:`~.channels.ChannelConfigError` for a URL the
    adapter cannot call."""
    assert up.url is not None
    parts = urlsplit(up.url)
    tls = SCHEMES.get(parts.scheme)
    if tls is None:
        raise ChannelConfigError(
            "url", f"the grpc adapter takes grpc://host:port or grpcs://host:port, got {up.url}"
        )
    if parts.port is None:
        raise ChannelConfigError("url", f"a gRPC upstream URL needs a port, got {up.url}")
    if parts.path not in ("", "/"):
        raise ChannelConfigError("url", "a gRPC upstream URL has no path (methods name it)")
    if not tls and up.tls is not None:
        raise ChannelConfigError("tls", f"tls is set but the URL is plaintext ({up.url})")
    host = parts.hostname or ""
    target = f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"
    keepalive = None
    if options.keepalive_time is not None:
        keepalive = (
            options.keepalive_time,
            options.keepalive_timeout,
            options.keepalive_permit_without_calls,
        )
    return ChannelTarget(
        host=host,
        port=parts.port,
        target=target,
        authority=up.host or target,
        tls=(up.tls or UpstreamTLS()) if tls else None,
        server_name=((up.tls.server_name if up.tls else None) or host) if tls else None,
        connect_timeout=up.connect_timeout,
        max_reconnect_backoff=options.max_reconnect_backoff,
        keepalive=keepalive,
        max_send_message_size=options.max_send_message_size,
        max_receive_message_size=options.max_receive_message_size,
    )


def h2_context(tls: UpstreamTLS) -> tuple[ssl.SSLContext, CertInfo | None]:
    """``tls`` as an HTTP upstream's client context has it, offering only ``h2`` over ALPN."""
    ctx, info = client_context(tls)
    ctx.set_alpn_protocols(["h2"])  # gRPC is HTTP/2 only
    return ctx, info
