"""The config file's shape, as frozen pydantic models (docs/configuration.md documents it).

This module assembles the whole file, :class:`SidecarConfig`, from its sections and re-exports
every section's model, so ``from sidecar.config.models import X`` is the one import to know.
Each section lives in the module for what it configures:

- :mod:`.listeners`: the app-facing and admin ports (``admin``, ``http``, ``grpc``);
- :mod:`.inbound`: the mTLS listener in front of the app (``inbound``);
- :mod:`.upstreams`: the named destinations (``upstreams.<name>``);
- :mod:`.routes`: explicit routes (``routes``), and the match inbound routes share;
- :mod:`.policies`: the resilience and credential policies upstreams and routes carry;
- :mod:`.telemetry`: log level, access log, tracing (``telemetry``);
- :mod:`.shutdown`: what SIGTERM does (``shutdown``);
- :mod:`.names`: the names keys accept (upstream, route, header, gRPC service, SPIFFE ID).

Unknown keys are rejected everywhere (``extra="forbid"``) so a typo fails at load time with its
key path. Plugin sections under ``plugins:`` are kept raw here and validated by the model each
plugin declares (see :mod:`sidecar.config.loader`). New features add their keys to the module of
what they configure; a new top-level section is added to :class:`SidecarConfig` here. Checks
across sections that need more than the models (an unknown upstream in a route, secrets read
once) are :mod:`.checks`, not here.
"""

from __future__ import annotations

__all__ = [
    "RESERVED_HEADERS",
    "UPSTREAM_NAME",
    "AccessLogConfig",
    "AdminConfig",
    "GrpcFloodConfig",
    "GrpcListenerConfig",
    "HttpListenerConfig",
    "InboundConfig",
    "InboundRoute",
    "InboundTLS",
    "Model",
    "PluginsConfig",
    "PoolConfig",
    "RouteConfig",
    "RouteMatch",
    "ShutdownConfig",
    "SidecarConfig",
    "TelemetryConfig",
    "TracingConfig",
    "UpstreamConfig",
    "UpstreamTLS",
]

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from .base import Model
from .inbound import InboundConfig, InboundRoute, InboundTLS
from .listeners import AdminConfig, GrpcFloodConfig, GrpcListenerConfig, HttpListenerConfig
from .names import RESERVED_HEADERS, UPSTREAM_NAME, UpstreamName

# not in __all__, but the credential providers import it from here: "as" keeps it exported
from .names import ConfigurableHeaderName as ConfigurableHeaderName
from .policies import RateLimitBackendConfig
from .routes import RouteConfig, RouteMatch
from .shutdown import ShutdownConfig
from .telemetry import AccessLogConfig, TelemetryConfig, TracingConfig
from .upstreams import PoolConfig, UpstreamConfig, UpstreamTLS


class PluginsConfig(BaseModel):
    """``plugins:``: ``disabled`` plus one section per plugin that declares config.

    The sections stay raw here; the loader validates each with the model its plugin declares.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    #: plugin names (entry-point or module names) never loaded.
    disabled: list[str] = []

    def section(self, name: str) -> Any:
        return (self.model_extra or {}).get(name)


class SidecarConfig(Model):
    """The whole file. A section left empty (``upstreams:`` with nothing under it) is defaults."""

    admin: AdminConfig = AdminConfig()
    http: HttpListenerConfig = HttpListenerConfig()
    grpc: GrpcListenerConfig = GrpcListenerConfig()
    #: the mTLS listener in front of the app; none when unset.
    inbound: InboundConfig | None = None
    telemetry: TelemetryConfig = TelemetryConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    #: where global rate limits are decided, by name (``upstreams.X.global_rate_limit.backend``).
    ratelimit_backends: dict[str, RateLimitBackendConfig] = {}
    upstreams: dict[UpstreamName, UpstreamConfig] = {}
    routes: list[RouteConfig] = []
    plugins: PluginsConfig = PluginsConfig()

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (v is None and k in cls.model_fields)}
        return data

    @model_validator(mode="after")
    def _services_once(self) -> SidecarConfig:
        owner: dict[str, str] = {}
        for name, up in self.upstreams.items():
            for service in up.services:
                prior = owner.setdefault(service, name)
                if prior != name:
                    raise PydanticCustomError(
                        "grpc_service",
                        "gRPC service {service} is routed to two upstreams: {a} and {b}",
                        {"service": service, "a": prior, "b": name},
                    )
        return self
