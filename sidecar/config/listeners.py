"""The ports the sidecar listens on for the local app and its operators: ``admin``, ``http`` and
``grpc`` (with ``grpc.flood_protection``).

Each section says where the port binds and how much one connection or call may ask of it. The
app-facing ports and the admin port are loopback-only by type. The mTLS port that peers call,
``inbound``, is :mod:`.inbound`; where calls go once accepted is :mod:`.upstreams` and
:mod:`.routes`.
"""

from __future__ import annotations

__all__ = [
    "AdminConfig",
    "GrpcFloodConfig",
    "GrpcListenerConfig",
    "HttpListenerConfig",
]

from typing import Literal

from pydantic import Field

from .base import Model
from .types import Address, Duration, LoopbackAddress, PositiveDuration, Size


class AdminConfig(Model):
    """``admin:``: the ops port (``/healthz``, ``/readyz``, ``/metrics``, ``/config``...)."""

    #: loopback only: ``/config`` and the plugin routes are not for the network.
    address: LoopbackAddress = "127.0.0.1:15000"
    #: off when unset. A second port serving only ``/metrics``, ``/healthz`` and ``/readyz``, which
    #: may bind the pod address (``0.0.0.0:15030``) so Prometheus and kubelet probes reach it.
    metrics_address: Address | None = None


class HttpListenerConfig(Model):
    """``http:``: the app-facing HTTP/1.1 egress listener."""

    #: loopback only: whoever reaches it calls upstreams with the sidecar's credentials.
    address: LoopbackAddress = "127.0.0.1:15001"
    #: total size of the request line and headers (431 past it).
    max_header_bytes: Size = Field(60 * 1024, ge=1024)
    #: number of request headers (431 past it).
    max_headers: int = Field(100, ge=1, le=10_000)
    #: request-target length (414 past it).
    max_uri_bytes: Size = Field(8 * 1024, ge=256)
    #: request body limit (413 past it); ``null`` streams bodies of any size.
    max_request_body: Size | None = None
    #: time allowed to receive a complete request head once it started (408 past it).
    header_timeout: PositiveDuration = 10.0
    #: an idle keep-alive connection is closed after this long.
    idle_timeout: PositiveDuration = 60.0
    #: app connections open at once; a new one past it is closed at once and counted
    #: (``sidecar_connections_refused_total``). ``null``: sized from the open-files limit
    #: (docs/operations.md, "Open files and connection caps").
    max_connections: int | None = Field(None, ge=1)


class GrpcFloodConfig(Model):
    """``grpc.flood_protection:``: how much work one app connection may cause the HTTP/2 front
    (``grpc.server: h2``) with cheap frames before it gets GOAWAY(ENHANCE_YOUR_CALM) and is
    closed (docs/grpc.md, "Flood protection"). Counts are per connection, per ``window``."""

    #: ``false``: no connection is closed for flooding (``frames_per_turn`` still applies).
    enabled: bool = True
    #: the counts below start again every ``window``.
    window: PositiveDuration = 10.0
    #: calls the app may reset (RST_STREAM) before the sidecar finished them, while younger than
    #: ``min_stream_lifetime``, in one window whatever their share of its calls...
    max_premature_resets: int = Field(200, ge=1)
    #: ...and past that, while they are at most this share of the calls it opened in the window.
    premature_reset_ratio: float = Field(0.5, ge=0.0, le=1.0)
    #: a call reset when older than this is a cancellation, never a flood.
    min_stream_lifetime: Duration = 1.0
    #: frames that start no call and carry no message (PING, SETTINGS, PRIORITY, WINDOW_UPDATE,
    #: RST_STREAM, empty DATA, unknown types, HEADERS that open nothing) per window, plus 4 for
    #: each call opened and each frame the sidecar sent (what an honest client answers with).
    max_control_frames: int = Field(1000, ge=1)
    #: frames of one connection handled per event-loop turn; the rest wait for the next turn
    #: (reading paused), so one connection cannot hold the loop that serves every port.
    frames_per_turn: int = Field(100, ge=1, le=100_000)
    #: calls of one connection started per event-loop turn; the others start in the next
    #: turns (a call the app resets before its turn costs no work).
    calls_per_turn: int = Field(16, ge=1, le=100_000)


class GrpcListenerConfig(Model):
    """``grpc:``: the app-facing gRPC egress listener (docs/grpc.md)."""

    #: ``false``: no gRPC port at all.
    enabled: bool = True
    #: loopback only, like ``http``.
    address: LoopbackAddress = "127.0.0.1:15002"
    #: largest message the app may send (RESOURCE_EXHAUSTED past it); a 4 MiB payload plus its
    #: framing fits the default.
    max_receive_message_size: Size = Field(8 * 1024 * 1024, ge=1024)
    #: largest message passed back to the app.
    max_send_message_size: Size = Field(8 * 1024 * 1024, ge=1024)
    #: request metadata size (names and values) an app may send.
    max_metadata_size: Size = Field(60 * 1024, ge=1024)
    #: streams (calls) in flight on one app connection (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS;
    #: a gRPC client queues calls past it). It also bounds the upstream calls one connection can
    #: start and reset before flood protection closes it: lower it where local clients are not
    #: trusted (docs/grpc.md, "Flood protection").
    max_concurrent_streams: int = Field(1024, ge=1, le=100_000)
    #: app connections open at once, like ``http.max_connections`` (the ``h2`` server only:
    #: grpcio's server does not show its connections).
    max_connections: int | None = Field(None, ge=1)
    #: what serves the port: ``h2`` (the sidecar's HTTP/2 front: routes by ``:authority``,
    #: about half the CPU per call) or ``grpcio`` (a grpc.aio server: takes compressed calls,
    #: cannot route by authority); docs/grpc.md.
    server: Literal["grpcio", "h2"] = "h2"
    #: what one app connection may make the ``h2`` server do with cheap frames (rapid reset,
    #: PING/SETTINGS floods...); grpcio's server has its own protections (docs/grpc.md).
    flood_protection: GrpcFloodConfig = GrpcFloodConfig()
