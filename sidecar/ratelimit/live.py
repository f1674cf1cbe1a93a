"""The rate-limit backends of one running sidecar: opened at start, closed at drain.

The built-in ``ratelimit_backends`` lifespan (:mod:`.plugin`) builds a :class:`LiveBackends`
from the registered backend types and the config, starts each backend, and publishes it in
``sidecar.resources[RESOURCE]``, where the ``global_rate_limit`` filter factory finds it through
``RouteContext.resources``. A reload that adds or changes a backend gets a new instance when
routes are composed; the one it replaced keeps serving the calls still holding it and is closed
at shutdown with the others.
"""

from __future__ import annotations

__all__ = ["RESOURCE", "LiveBackends", "live_backends"]

import logging
from collections.abc import Mapping
from typing import Any

from ..api import RateLimitBackend, RateLimitBackendRegistry
from ..api.ratelimit import LIVE_BACKENDS
from ..config.policies import RateLimitBackendConfig
from ..telemetry.metrics import Metrics
from .guard import GuardedBackend

log = logging.getLogger("sidecar.ratelimit")

#: Where a sidecar's live backends are published (``sidecar.resources``).
RESOURCE = LIVE_BACKENDS  # the key the public API reads (sidecar.api.ratelimit)


class LiveBackends:
    """Backend instances by name, each wrapped in its :class:`GuardedBackend`."""

    def __init__(self, registry: RateLimitBackendRegistry, metrics: Metrics) -> None:
        self._registry = registry
        self._metrics = metrics
        self._live: dict[str, tuple[RateLimitBackendConfig, GuardedBackend]] = {}
        #: replaced by a reload; closed at shutdown (calls in flight may still hold them)
        self._retired: list[RateLimitBackend] = []

    def get(self, name: str, config: RateLimitBackendConfig) -> GuardedBackend:
        """The live backend ``name`` for ``config`` (built now if new or changed)."""
        have = self._live.get(name)
        if have is not None and have[0] == config:
            return have[1]
        backend_class: type[RateLimitBackend] = self._registry[config.type]
        guarded = GuardedBackend(backend_class(name, config), self._metrics)
        if have is not None:
            self._retired.append(have[1].backend)
        self._live[name] = (config, guarded)
        return guarded

    async def open(self, configs: Mapping[str, RateLimitBackendConfig]) -> None:
        """Build and start the configured backends (start-up)."""
        for name, config in configs.items():
            await self.get(name, config).start()

    async def aclose(self) -> None:
        for backend in [*(g.backend for _, g in self._live.values()), *self._retired]:
            try:
                await backend.aclose()
            except Exception:
                log.exception(
                    f"rate-limit backend {backend.name!r} failed to close",
                    extra={"fields": {"backend": backend.name}},
                )
        self._live.clear()
        self._retired.clear()

    def describe(self) -> dict[str, Any]:
        return {name: g.describe() for name, (_, g) in self._live.items()}


def live_backends(resources: Mapping[str, Any]) -> LiveBackends:
    """The sidecar's live backends from ``RouteContext.resources``."""
    live = resources.get(RESOURCE)
    if not isinstance(live, LiveBackends):
        raise RuntimeError(
            "no live rate-limit backends: global_rate_limit needs the built-in plugin "
            "'sidecar.ratelimit.plugin' (is it in plugins.disabled?)"
        )
    return live
