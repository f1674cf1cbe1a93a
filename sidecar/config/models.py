"""The config file's shape, as frozen pydantic models (DESIGN §5 is the contract).

Unknown keys are rejected everywhere (``extra="forbid"``) so a typo fails at load time with its
key path. Plugin sections under ``plugins:`` are kept raw here and validated by the model each
plugin declares (see :mod:`sidecar.config.loader`). Features of later issues add their keys here.
"""

from __future__ import annotations

__all__ = [
    "AccessLogConfig",
    "AdminConfig",
    "HttpListenerConfig",
    "Model",
    "PluginsConfig",
    "PoolConfig",
    "RouteConfig",
    "RouteMatch",
    "ShutdownConfig",
    "SidecarConfig",
    "TelemetryConfig",
    "UpstreamConfig",
    "UpstreamTLS",
]

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .types import Address, Duration, SecretField, Size

#: Upstream names appear as the first path segment (``/payments/...``) and in metric labels.
UPSTREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AdminConfig(Model):
    address: Address = "127.0.0.1:15000"


class HttpListenerConfig(Model):
    """The app-facing HTTP/1.1 egress listener."""

    address: Address = "127.0.0.1:15001"
    #: total size of the request line and headers (431 past it).
    max_header_bytes: Size = 60 * 1024
    #: number of request headers (431 past it).
    max_headers: int = Field(100, ge=1, le=10_000)
    #: request-target length (414 past it).
    max_uri_bytes: Size = 8 * 1024
    #: request body limit (413 past it); ``null`` streams bodies of any size.
    max_request_body: Size | None = None
    #: time allowed to receive a complete request head once it started (408 past it).
    header_timeout: Duration = 10.0
    #: an idle keep-alive connection is closed after this long.
    idle_timeout: Duration = 60.0
    #: concurrent app connections; past it new ones wait in the kernel's accept queue.
    max_connections: int = Field(10_000, ge=1)


class ShutdownConfig(Model):
    #: on SIGTERM, in-flight calls get this long to finish before they are cut.
    drain_timeout: Duration = 20.0


class AccessLogConfig(Model):
    enabled: bool = True
    #: fraction of successful calls logged (errors and sidecar decisions are always logged).
    sample_ratio: float = Field(1.0, ge=0.0, le=1.0)


class TelemetryConfig(Model):
    #: level of the sidecar's own JSON log (``debug``, ``info``, ``warning``, ``error``).
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: AccessLogConfig = AccessLogConfig()


class PoolConfig(Model):
    """The bounded keep-alive connection pool of one upstream."""

    #: connections open at once (idle + busy); a call past it waits up to ``connect_timeout``.
    max_connections: int = Field(512, ge=1, le=100_000)
    #: idle connections kept for reuse.
    max_idle: int = Field(64, ge=0, le=100_000)
    #: an idle connection is closed after this long.
    idle_timeout: Duration = 60.0


class UpstreamTLS(Model):
    """TLS toward the upstream (``https://`` URLs)."""

    #: CA bundle to verify the server; system CAs when unset.
    ca: str | None = None
    #: client certificate and key (mTLS).
    cert: str | None = None
    key: str | None = None
    #: SNI and the name checked in the server certificate; the URL's host when unset.
    server_name: str | None = None
    #: verify the server certificate and host name. Turning this off is for tests only.
    verify: bool = True

    @model_validator(mode="after")
    def _pair(self) -> UpstreamTLS:
        if (self.cert is None) != (self.key is None):
            raise PydanticCustomError("tls_pair", "cert and key must be given together")
        return self


class UpstreamConfig(Model):
    """A named destination (``upstreams.<name>``)."""

    #: ``http://host:port`` or ``https://host:port`` (optionally with a base path).
    url: str | None = None
    #: the adapter that speaks to it: ``http`` unless said otherwise.
    adapter: str = "http"
    #: the whole call's budget, all attempts included.
    timeout: Duration = 15.0
    connect_timeout: Duration = 5.0
    #: time to wait for the upstream's response head once the request was sent.
    response_header_timeout: Duration | None = None
    pool: PoolConfig = PoolConfig()
    tls: UpstreamTLS | None = None
    #: ``Host`` sent upstream; the URL's authority when unset.
    host: str | None = None
    #: headers added to every request (replacing the app's); values may be secret references.
    request_headers: dict[str, str | SecretField] = {}
    #: adapter-specific options, validated by the adapter's own model.
    options: dict[str, Any] = {}

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if not parts.scheme or not parts.hostname:
            raise PydanticCustomError(
                "url", 'expected a URL like "http://host:port", got "{got}"', {"got": v}
            )
        if parts.query or parts.fragment or parts.username:
            raise PydanticCustomError(
                "url", "an upstream URL has no query, fragment or credentials: {got}", {"got": v}
            )
        return v

    @field_validator("request_headers")
    @classmethod
    def _header_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise PydanticCustomError("header", "not a header name: {got}", {"got": name})
        return {k.lower(): val for k, val in v.items()}


class RouteMatch(Model):
    """All given conditions must hold."""

    #: path prefix on segment boundaries: ``/pay`` matches ``/pay`` and ``/pay/x``, not ``/payx``.
    path_prefix: str | None = None
    #: ``Host`` (port ignored, case-insensitive).
    host: str | None = None
    #: exact header values.
    headers: dict[str, str] = {}

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise PydanticCustomError(
                "prefix", 'a path prefix starts with "/", got "{got}"', {"got": v}
            )
        return v.rstrip("/") or "/" if v is not None else None

    @field_validator("headers")
    @classmethod
    def _lower(cls, v: dict[str, str]) -> dict[str, str]:
        return {k.lower(): val for k, val in v.items()}


class RouteConfig(Model):
    """An explicit route; ``/<upstream>/...`` and ``Host: <upstream>`` work without one."""

    name: str | None = None
    match: RouteMatch
    upstream: str
    #: replace the matched ``path_prefix`` with this before forwarding (kept when unset).
    prefix_rewrite: str | None = None


class PluginsConfig(BaseModel):
    """``plugins:``: ``disabled`` plus one section per plugin that declares config."""

    model_config = ConfigDict(extra="allow", frozen=True)

    disabled: list[str] = []

    def section(self, name: str) -> Any:
        return (self.model_extra or {}).get(name)


class SidecarConfig(Model):
    admin: AdminConfig = AdminConfig()
    http: HttpListenerConfig = HttpListenerConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    upstreams: dict[str, UpstreamConfig] = {}
    routes: list[RouteConfig] = []
    plugins: PluginsConfig = PluginsConfig()

    @field_validator("upstreams")
    @classmethod
    def _names(cls, v: dict[str, UpstreamConfig]) -> dict[str, UpstreamConfig]:
        for name in v:
            if not UPSTREAM_NAME.match(name):
                raise PydanticCustomError(
                    "upstream_name",
                    "upstream name {got} must be letters, digits, '.', '_' or '-'",
                    {"got": repr(name)},
                )
        return v
