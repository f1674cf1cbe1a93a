"""The public plugin API: everything a plugin may use, and nothing else.

A plugin imports from ``sidecar`` (which re-exports this package) and never from a module under
it: those are the sidecar's own and may change in any release. What is here changes only as
:data:`API_VERSION` says (:mod:`sidecar.api.hookspecs`, "Versions").

- hooks: ``hookimpl`` to implement them, the specs in :mod:`.hookspecs`, ``deprecated``;
- the registries the hooks fill (:class:`Registry` is their base, for plugins offering their own
  extension point): config sections, adapters, filters (placed by :class:`Phase`), fronts,
  lifespans, admin routes, rate-limit backends, credential providers;
- what factories receive: :class:`RouteContext` (with the front's and the adapter's
  :class:`FrontTraits` and :class:`AdapterTraits`), :class:`SharedKey` for per-upstream state,
  :class:`AdapterServices`, :class:`ProviderContext`, :class:`FrontContext`;
- read-only views of the running sidecar: :class:`RuntimeView`, :class:`ControlView`;
- the nouns of a call (``Exchange``, ``Response``, ``Headers``, ``StashKey``, ``Filter``,
  ``Handler``) and the typed errors a filter or adapter raises (``SidecarError`` and its kinds);
- what a plugin may tell the core about a call (:mod:`.calls`): ``log_field`` (an access-log
  field), ``name_span`` (the SERVER span's name), ``allow_retry`` (a retry permit or veto);
- the config a factory reads (``SidecarConfig``, ``UpstreamConfig``, ``RouteConfig``) and what a
  plugin's own config section is made of (``Model``: frozen, unknown keys refused; ``Duration``,
  ``Size``, ``SecretRef`` for a ``{env|file}`` secret, ``SecretValue`` to read one).
"""

from __future__ import annotations

from ..chain import Filter, Handler, compose
from ..config.base import Model
from ..config.models import RouteConfig, SidecarConfig, UpstreamConfig
from ..config.secrets import SecretValue
from ..config.types import Duration, SecretRef, Size
from ..deferred_import import deferred
from ..errors import (
    BadRequest,
    CircuitOpen,
    ConfigError,
    ConfigProblem,
    CredentialsUnavailable,
    NoRoute,
    Overloaded,
    PluginError,
    RateLimited,
    RegistryConflict,
    SidecarError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamReset,
    UpstreamTimeout,
)
from ..exchange import Exchange, Headers, Response, StashKey, read_body
from ..injected import Injected
from ..outcomes import Classifier, classify_http
from .adapter import Adapter, AdapterRegistry, AdapterServices
from .admin import AdminHandler, AdminRouteRegistry, runtime_of
from .calls import (
    LOG_FIELDS,
    MAX_LOG_FIELDS,
    MAX_LOG_VALUE,
    MAX_SPAN_NAME,
    RETRY_PERMIT,
    SPAN_NAME,
    allow_retry,
    log_field,
    name_span,
)
from .config import ConfigRegistry
from .context import FilterFactory, RouteContext
from .credentials import (
    AuthConfigProblem,
    CredentialProvider,
    CredentialRegistry,
    ProviderContext,
)
from .filters import FilterRegistry
from .fronts import (
    AppActivity,
    Front,
    FrontContext,
    FrontFactory,
    FrontRegistry,
    RouteBuilder,
)
from .hookspecs import API_VERSION, HookDeprecated, deprecated, hookimpl
from .lifespans import LifespanFactory, LifespanRegistry
from .phases import INVARIANTS, Invariant, Phase
from .ratelimit import (
    Decision,
    Limit,
    LiveRateLimitBackend,
    RateLimitBackend,
    RateLimitBackendRegistry,
    live_ratelimit_backend,
)
from .registry import Registration, Registry
from .runtime import ControlView, PluginInfo, Registries, ReloadResult, RuntimeView
from .shared import Held, SharedKey, SharedState
from .tracing import plugin_tracer
from .traits import GRPC_STATUSES, HTTP_STATUSES, AdapterTraits, FrontTraits, StatusScheme

__all__ = [
    "API_VERSION",
    "GRPC_STATUSES",
    "HTTP_STATUSES",
    "INVARIANTS",
    "LOG_FIELDS",
    "MAX_LOG_FIELDS",
    "MAX_LOG_VALUE",
    "MAX_SPAN_NAME",
    "RETRY_PERMIT",
    "SPAN_NAME",
    "Adapter",
    "AdapterRegistry",
    "AdapterServices",
    "AdapterTraits",
    "AdminHandler",
    "AdminRouteRegistry",
    "AppActivity",
    "AuthConfigProblem",
    "BadRequest",
    "CircuitOpen",
    "Classifier",
    "ConfigError",
    "ConfigProblem",
    "ConfigRegistry",
    "ControlView",
    "CredentialProvider",
    "CredentialRegistry",
    "CredentialsUnavailable",
    "Decision",
    "Duration",
    "Exchange",
    "Filter",
    "FilterFactory",
    "FilterRegistry",
    "Front",
    "FrontContext",
    "FrontFactory",
    "FrontRegistry",
    "FrontTraits",
    "Handler",
    "Headers",
    "Held",
    "HookDeprecated",
    "Injected",
    "Invariant",
    "LifespanFactory",
    "LifespanRegistry",
    "Limit",
    "LiveRateLimitBackend",
    "Model",
    "NoRoute",
    "Overloaded",
    "Phase",
    "PluginError",
    "PluginInfo",
    "ProviderContext",
    "RateLimitBackend",
    "RateLimitBackendRegistry",
    "RateLimited",
    "Registration",
    "Registries",
    "Registry",
    "RegistryConflict",
    "ReloadResult",
    "Response",
    "RouteBuilder",
    "RouteConfig",
    "RouteContext",
    "RuntimeView",
    "SecretRef",
    "SecretValue",
    "SharedKey",
    "SharedState",
    "SidecarConfig",
    "SidecarError",
    "Size",
    "StashKey",
    "StatusScheme",
    "UpstreamConfig",
    "UpstreamConnectError",
    "UpstreamProtocolError",
    "UpstreamReset",
    "UpstreamTimeout",
    "allow_retry",
    "classify_http",
    "compose",
    "deferred",
    "deprecated",
    "hookimpl",
    "live_ratelimit_backend",
    "log_field",
    "name_span",
    "plugin_tracer",
    "read_body",
    "runtime_of",
]
