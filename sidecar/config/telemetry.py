"""The ``telemetry:`` section: the sidecar's own log level, the access log and tracing.

Only what the file may say about them. Reading the ``OTEL_*`` environment for the keys left
unset, and the exporters themselves, belong to the telemetry extensions; metrics need no
config of their own (they are served on the admin port, :mod:`.listeners`).
"""

from __future__ import annotations

__all__ = ["AccessLogConfig", "TelemetryConfig", "TracingConfig"]

from typing import Literal

from pydantic import Field

from .base import Model
from .names import ConfigurableHeaderName
from .types import HeaderValueOrSecret, PositiveDuration


class AccessLogConfig(Model):
    """``telemetry.access_log:``: one JSON line per call on stdout."""

    enabled: bool = True
    #: fraction of successful calls logged (errors and sidecar decisions are always logged).
    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    #: ``warning``: only calls the sidecar decided, 5xx and cut calls get a line.
    level: Literal["info", "warning"] = "info"


class TracingConfig(Model):
    """``telemetry.tracing:``: OpenTelemetry spans exported over OTLP (docs/observability.md).

    A key left unset takes the standard ``OTEL_*`` environment variable, then the OTel default.
    """

    #: ``false`` (or ``OTEL_SDK_DISABLED=true``): no tracing objects at all.
    enabled: bool = True
    #: OTLP transport; unset: ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``_PROTOCOL``, else grpc.
    protocol: Literal["grpc", "http/protobuf"] | None = None
    #: collector address; unset: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``_ENDPOINT``, else
    #: ``http://localhost:4317`` (grpc) or ``http://localhost:4318/v1/traces`` (http/protobuf).
    endpoint: str | None = None
    #: parent-based ratio sampler's ratio for new traces (a call with a sampled parent is always
    #: sampled); unset: ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG``, else 1.0.
    sample_ratio: float | None = Field(None, ge=0.0, le=1.0)
    #: ``service.name``; unset: ``OTEL_SERVICE_NAME``, then ``OTEL_RESOURCE_ATTRIBUTES``, else
    #: ``sidecar``.
    service_name: str | None = None
    #: headers sent to the collector (values may be secret references); empty:
    #: ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` / ``OTEL_EXPORTER_OTLP_HEADERS``.
    headers: dict[ConfigurableHeaderName, HeaderValueOrSecret] = {}
    #: one export request's timeout (retries included); unset:
    #: ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` / ``OTEL_EXPORTER_OTLP_TIMEOUT`` (ms), else 10 s.
    export_timeout: PositiveDuration | None = None
    #: spans kept waiting for export; past it new spans are dropped (and counted); unset:
    #: ``OTEL_BSP_MAX_QUEUE_SIZE``, else 2048.
    max_queue_size: int | None = Field(None, ge=1, le=1_000_000)
    #: spans per export request; unset: ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``, else 512.
    max_export_batch_size: int | None = Field(None, ge=1, le=100_000)
    #: time between exports; unset: ``OTEL_BSP_SCHEDULE_DELAY`` (ms), else 5 s.
    schedule_delay: PositiveDuration | None = None


class TelemetryConfig(Model):
    """``telemetry:``: the sidecar's own log, the access log and tracing."""

    #: level of the sidecar's own JSON log on stderr.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: AccessLogConfig = AccessLogConfig()
    #: off when unset.
    tracing: TracingConfig | None = None
