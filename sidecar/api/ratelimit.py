"""What a rate-limit backend is: the base class plugins subclass, and the registry of types.

A backend decides global limits (``upstreams.X.global_rate_limit``): given a key and a
:class:`Limit`, it admits or refuses one call, atomically, for every replica that shares it.
Backend *types* are registered through the ``sidecar_register_ratelimit_backends`` hook
(``registry.add("redis", RedisBackend)``); ``ratelimit_backends.<name>.type`` names one, and each
configured backend becomes one instance per running sidecar (:mod:`sidecar.ratelimit.live`).

A backend only decides. The time budget, what happens when it is slow or down, the outage log
lines and the metrics are the same for every backend and live in :mod:`sidecar.ratelimit.guard`,
so a plugin's ``decide`` just raises when it cannot answer.
"""

from __future__ import annotations

__all__ = [
    "Decision",
    "Limit",
    "LiveRateLimitBackend",
    "RateLimitBackend",
    "RateLimitBackendRegistry",
    "live_ratelimit_backend",
]

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

from ..config.policies import RateLimitBackendConfig
from .registry import Registry

if TYPE_CHECKING:
    from ..config.models import SidecarConfig


@dataclass(frozen=True, slots=True)
class Limit:
    """``rate`` calls per second, ``burst`` of them at once after a quiet spell."""

    rate: float
    burst: int

    @property
    def interval(self) -> float:
        """Seconds one call is worth (GCRA's emission interval)."""
        return 1.0 / self.rate


@dataclass(frozen=True, slots=True)
class Decision:
    """A backend's answer for one call."""

    allowed: bool
    #: calls still allowed at once after this one (0 when refused).
    remaining: int = 0
    #: seconds until a call would be allowed (0.0 when allowed).
    retry_after: float = 0.0

    @property
    def retry_after_s(self) -> int:
        """``retry_after`` as whole seconds for ``Retry-After`` (at least 1)."""
        return max(1, math.ceil(self.retry_after))


class RateLimitBackend:
    """Base class of rate-limit backends; one instance per configured backend and sidecar.

    Subclasses set :attr:`options_model` (validates the backend's own keys beside ``type``,
    ``url``, ``password``, ``timeout``, ``on_error``) and :attr:`url_schemes`, and implement
    :meth:`decide`; :meth:`start` and :meth:`aclose` when they hold connections.
    """

    #: validates the backend-specific keys of ``ratelimit_backends.<name>`` (``None``: none).
    options_model: ClassVar[type[BaseModel] | None] = None
    #: URL schemes ``url`` may use; empty: the backend takes no ``url``.
    url_schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, config: RateLimitBackendConfig) -> None:
        self.name = name
        self.config = config
        #: the validated backend-specific options (``None`` without an options model).
        self.options: BaseModel | None = (
            self.options_model.model_validate(config.options()) if self.options_model else None
        )

    async def start(self) -> None:
        """Called once when the sidecar starts. Must not fail because the backend is
        unreachable (the sidecar serves without it, by ``on_error``); connections may open
        lazily on the first :meth:`decide`."""

    async def decide(self, key: str, limit: Limit) -> Decision:
        """Admit or refuse one call under ``key`` at ``limit``, atomically for every replica
        sharing the backend. Raise any exception when the backend cannot answer; the caller
        bounds the time it waits and applies ``on_error``."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close connections (sidecar shutdown, or a reload replaced this backend)."""

    def describe(self) -> dict[str, Any]:
        """State for ``/upstreams`` (never a secret)."""
        return {"type": self.config.type}


class RateLimitBackendRegistry(Registry[type[RateLimitBackend]]):
    """Rate-limit backend classes by the name ``ratelimit_backends.<b>.type`` uses."""

    kind = "rate-limit backend"

    def add(self, name: str, backend: type[RateLimitBackend]) -> None:
        self._add(name, backend)


#: where the running sidecar publishes its live backends in ``resources`` (the built-in
#: plugin ``sidecar.ratelimit.plugin`` does, under this key, an object whose
#: ``get(name, config)`` gives the live backend of one configured name)
LIVE_BACKENDS = "ratelimit_backends"


class LiveRateLimitBackend(Protocol):
    """A configured backend as the running sidecar holds it, for a plugin's own limits: each
    :meth:`decide` is bounded by the backend's ``timeout`` and follows its outage rules (logged
    once, counted in metrics), exactly as for ``global_rate_limit``."""

    @property
    def name(self) -> str: ...

    @property
    def fail_open(self) -> bool:
        """The backend's ``on_error``: ``True`` (``allow``) admits a call it could not decide."""
        ...

    async def decide(self, key: str, limit: Limit) -> Decision | None:
        """The backend's decision for one call, or ``None`` when it had none in time (then
        apply :attr:`fail_open`)."""
        ...


def live_ratelimit_backend(
    resources: Mapping[str, Any], config: SidecarConfig, name: str
) -> LiveRateLimitBackend:
    """The live backend ``ratelimit_backends.<name>`` of the running sidecar, from
    ``RouteContext.resources`` or ``AdapterServices.resources`` (call it when a filter or a
    handler is built, never per call). Raises ``KeyError`` naming the configured backends when
    ``name`` is not one of them, ``RuntimeError`` when the sidecar publishes no backends."""
    backends = config.ratelimit_backends
    if name not in backends:
        known = ", ".join(sorted(backends)) or "none"
        raise KeyError(f"no backend named {name!r} under ratelimit_backends ({known})")
    live = resources.get(LIVE_BACKENDS)
    if live is None:
        raise RuntimeError(
            "no live rate-limit backends: the built-in plugin 'sidecar.ratelimit.plugin' "
            "publishes them (is it in plugins.disabled?)"
        )
    backend: LiveRateLimitBackend = live.get(name, backends[name])
    return backend
