"""One grpc.aio channel per gRPC upstream: its target, TLS credentials and channel options.

``grpc://host:port`` is plaintext, ``grpcs://host:port`` TLS: the server is verified against
``tls.ca`` (the system CAs when unset) under ``tls.server_name`` (the URL's host when unset), and
``tls.cert``/``tls.key`` are presented when set (mTLS). grpcio cannot skip verification nor check
a SPIFFE ID in the server's certificate, so ``tls.verify: false`` and ``tls.spiffe_id`` are
refused here rather than silently ignored.

A channel is keyed by everything it was built from, certificate files' contents included, so a
reload that leaves an upstream alone keeps its warm connection, and one after a certificate
rotation builds a new channel with the new files.

The options make the channel behave as the sidecar's policies expect: grpcio's own retries are
off (the ``retry`` filter is the one retrier), no service config is looked up in DNS, a connect
attempt is bounded by ``connect_timeout``, and a down upstream is retried at least every
``max_reconnect_backoff`` (grpcio's default grows to two minutes). Not here: the calls.

grpcio is imported by :func:`open_channel`, not with the module: the options model and the
checks are read by every sidecar's config validation, a channel only by one with a gRPC upstream.
"""

from __future__ import annotations

__all__ = [
    "ChannelConfigError",
    "ChannelSpec",
    "GrpcUpstreamOptions",
    "channel_spec",
    "open_channel",
]

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import Field

from ..config.base import Model
from ..config.models import UpstreamConfig
from ..config.types import PositiveDuration, Size

if TYPE_CHECKING:
    import grpc

SCHEMES = {"grpc": False, "grpcs": True}


class GrpcUpstreamOptions(Model):
    """``upstreams.<name>.options`` of an upstream with ``adapter: grpc`` (docs/grpc.md)."""

    #: send an HTTP/2 ping after this long without activity; unset: no keepalive pings.
    keepalive_time: PositiveDuration | None = None
    #: a ping unanswered for this long closes the connection (its calls end UNAVAILABLE).
    keepalive_timeout: PositiveDuration = 20.0
    #: ping even while no call is in flight (the upstream must allow it, or it sends GOAWAY).
    keepalive_permit_without_calls: bool = False
    #: largest message sent to the upstream (RESOURCE_EXHAUSTED past it).
    max_send_message_size: Size = Field(8 * 1024 * 1024, ge=1024)
    #: largest message accepted from the upstream (RESOURCE_EXHAUSTED past it).
    max_receive_message_size: Size = Field(8 * 1024 * 1024, ge=1024)
    #: longest wait between two attempts to reconnect to a down upstream.
    max_reconnect_backoff: PositiveDuration = 5.0


@dataclass(frozen=True)
class ChannelSpec:
    """What one channel is built from; equal specs share a channel across reloads."""

    target: str
    tls: bool
    mtls: bool
    #: channel arguments (grpcio's ``options``).
    options: tuple[tuple[str, Any], ...]
    #: root CA, client key and certificate (PEM), when TLS.
    ca: bytes | None
    key: bytes | None
    cert: bytes | None

    @property
    def key_id(self) -> tuple[Any, ...]:
        # file contents are compared by digest (the spec itself holds them)
        digest = hashlib.sha256(b"\0".join(x or b"" for x in (self.ca, self.key, self.cert)))
        return (self.target, self.tls, self.options, digest.hexdigest())


class ChannelConfigError(ValueError):
    """An upstream's config that no gRPC channel can honour; ``key`` is where (under it)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(reason)
        self.key = key


def channel_spec(up: UpstreamConfig, options: GrpcUpstreamOptions) -> ChannelSpec:
    """The channel an upstream needs; raises :class:`ChannelConfigError` for what gRPC cannot
    do, and ``OSError`` for a certificate file that cannot be read."""
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
    host = parts.hostname or ""
    target = f"[{host}]:{parts.port}" if ":" in host else f"{host}:{parts.port}"
    args: list[tuple[str, Any]] = [
        ("grpc.enable_retries", 0),
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.max_send_message_length", options.max_send_message_size),
        ("grpc.max_receive_message_length", options.max_receive_message_size),
        ("grpc.min_reconnect_backoff_ms", int(up.connect_timeout * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(options.max_reconnect_backoff * 1000)),
        ("grpc.keepalive_timeout_ms", int(options.keepalive_timeout * 1000)),
        ("grpc.keepalive_permit_without_calls", int(options.keepalive_permit_without_calls)),
    ]
    if options.keepalive_time is not None:
        args.append(("grpc.keepalive_time_ms", int(options.keepalive_time * 1000)))
    if up.host is not None:
        args.append(("grpc.default_authority", up.host))
    ca = key = cert = None
    cfg = up.tls
    if tls:
        if cfg is not None:
            if not cfg.verify:
                raise ChannelConfigError(
                    "tls.verify", "the grpc adapter always verifies the server (grpcio cannot not)"
                )
            if cfg.spiffe_id is not None:
                raise ChannelConfigError(
                    "tls.spiffe_id",
                    "the grpc adapter cannot check a server's SPIFFE ID (grpcio does not show "
                    "the peer certificate); check its DNS name with tls.server_name instead",
                )
            ca = Path(cfg.ca).read_bytes() if cfg.ca else None
            if cfg.cert is not None and cfg.key is not None:
                cert, key = Path(cfg.cert).read_bytes(), Path(cfg.key).read_bytes()
            if cfg.server_name:
                args.append(("grpc.ssl_target_name_override", cfg.server_name))
    elif cfg is not None:
        raise ChannelConfigError("tls", f"tls is set but the URL is plaintext ({up.url})")
    return ChannelSpec(target, tls, cert is not None, tuple(args), ca, key, cert)


def open_channel(spec: ChannelSpec) -> grpc.aio.Channel:
    """A channel for ``spec``; it connects on its first call."""
    import grpc  # composing a gRPC upstream (see the module docstring)

    if not spec.tls:
        return grpc.aio.insecure_channel(spec.target, options=spec.options)
    creds = grpc.ssl_channel_credentials(
        root_certificates=spec.ca, private_key=spec.key, certificate_chain=spec.cert
    )
    return grpc.aio.secure_channel(spec.target, creds, options=spec.options)
