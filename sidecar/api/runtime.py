"""Read-only views of a running sidecar, for the code that runs beside the data path.

Lifespans, admin routes, health and the gRPC control services never get the sidecar object
itself: they get a :class:`RuntimeView` (what a lifespan or a health check reads) or a
:class:`ControlView` (what the admin port and the admin API also do: describe, reload). Both are
Protocols, so a test passes a small fake, and the sidecar can change its insides without
breaking a plugin.
"""

from __future__ import annotations

__all__ = ["ControlView", "PluginInfo", "Registries", "ReloadResult", "RuntimeView"]

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel

from .adapter import Adapter, AdapterRegistry
from .credentials import CredentialRegistry
from .ratelimit import RateLimitBackendRegistry
from .shared import SharedState

if TYPE_CHECKING:
    from ..config.models import SidecarConfig
    from ..telemetry.metrics import Metrics
    from .admin import AdminRouteRegistry
    from .config import ConfigRegistry
    from .filters import FilterRegistry
    from .fronts import FrontRegistry
    from .lifespans import LifespanRegistry

M = TypeVar("M", bound=BaseModel)

#: ``starting`` until every front listens, ``ready`` while serving, then ``draining`` and
#: ``stopped``.
State = Literal["starting", "ready", "draining", "stopped"]


@dataclass
class Registries:
    """Everything the plugins registered, collected once per plugin host."""

    config: ConfigRegistry
    adapters: AdapterRegistry
    filters: FilterRegistry
    lifespans: LifespanRegistry
    admin_routes: AdminRouteRegistry
    ratelimit_backends: RateLimitBackendRegistry
    credentials: CredentialRegistry
    fronts: FrontRegistry


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, as ``sidecar plugins`` and ``/plugins`` show it."""

    name: str
    #: ``"built-in"``, ``"<distribution> <version>"`` or ``"in-process"`` (tests, embedders).
    source: str
    #: what it registered: ``"filter hello (order 500)"``, ``"config plugins.hello"``...
    registered: list[str]


@dataclass(frozen=True)
class ReloadResult:
    """What one reload did: whether the new config is in effect, the problems that refused it
    (``file: key.path: reason``, as ``sidecar check`` prints them), and the changed keys that
    wait for a restart (``http.address``...)."""

    applied: bool
    problems: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()


class RuntimeView(Protocol):
    """What lifespans and health checks read of the running sidecar."""

    @property
    def config(self) -> SidecarConfig:
        """The config in effect (replaced by each applied reload)."""

    @property
    def config_name(self) -> str:
        """The config file's name as messages give it (``<embedded default>`` without one)."""

    @property
    def metrics(self) -> Metrics:
        """This sidecar's metrics (its own Prometheus registry)."""

    @property
    def state(self) -> State:
        """``starting``, ``ready``, ``draining`` or ``stopped``."""

    @property
    def uptime(self) -> float:
        """Seconds since this sidecar was created."""

    @property
    def resources(self) -> MutableMapping[str, Any]:
        """Objects published for filter factories (``RouteContext.resources``) and the control
        plane: lifespans' (the credential broker...), the composition's (the inbound TLS
        material), the admin port's; each by a name the publishing module owns."""

    @property
    def shared(self) -> SharedState:
        """The live route table's per-upstream objects (breakers, limiters...)."""

    @property
    def registries(self) -> Registries:
        """What the plugins registered."""

    def adapter(self, name: str) -> Adapter | None:
        """The running adapter registered as ``name`` (``None`` when none or disabled)."""

    def plugin_config(self, name: str, model: type[M]) -> M:
        """The validated ``plugins.<name>`` section of the config in effect (the model's
        defaults when the file has none), typed: ``runtime.plugin_config("tenant", Tenant)``.
        Raises ``RuntimeError`` when no plugin declared ``name`` with ``model``."""


class ControlView(RuntimeView, Protocol):
    """What the admin port, the dashboard and the gRPC admin API also do."""

    @property
    def ports(self) -> Mapping[str, int]:
        """The port each listening front is bound to, by front name (``http``, ``admin``...)."""

    def describe_upstreams(self) -> dict[str, Any]:
        """``/upstreams``: each upstream's settings, adapter state and live policies."""

    def redacted_config(self) -> dict[str, Any]:
        """The running config as JSON data; secrets appear only as their references."""

    def plugins(self) -> list[PluginInfo]:
        """Each loaded plugin, where it came from, what it registered."""

    @property
    def disabled_plugins(self) -> tuple[str, ...]:
        """The names in ``plugins.disabled``."""

    async def reload_result(self) -> ReloadResult:
        """Re-read the config file and apply it if valid (:class:`ReloadResult`)."""
