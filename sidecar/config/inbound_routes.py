"""What the ``inbound`` section means for composition: the app as an upstream, and the routes.

Calls on the inbound listener go to one destination, the local app, through the same filter chain
as egress calls (rescue, access log, metrics, the inbound filters, ...) and the same ``http``
adapter. The app is composed as an upstream named :data:`APP` (``@app``: a name no configured
upstream can have, so its pool and its policy state are its own), ``http://<inbound.app>``, with:

- ``timeout``: ``inbound.timeout``;
- no retries and no circuit breaker: the calling peer's sidecar already retries and judges the
  upstream (two layers of retries multiply attempts; an open breaker here would refuse every peer
  at once); the concurrency limit stays on, to protect the app.

Routes: ``inbound.routes`` first, in file order (named ``inbound-<i>`` unless named), then the
default route ``inbound`` matching everything. Paths are forwarded unchanged (no upstream prefix
to strip). Each route's allow-list is its own ``allow``, the default route's ``inbound.allow``.

Not here: the listener (:mod:`sidecar.listeners.inbound`), the filters (:mod:`sidecar.tls.peer`,
:mod:`sidecar.tls.identity`).
"""

from __future__ import annotations

__all__ = ["APP", "DEFAULT_ROUTE", "InboundRouteSpec", "allow_list", "app_upstream", "routes"]

from dataclasses import dataclass

from .models import InboundConfig, RouteMatch, SidecarConfig, UpstreamConfig
from .policies import CircuitBreakerPolicy, RetryPolicy

#: The app's name as an upstream (metrics, logs, pools): not a valid upstream name on purpose.
APP = "@app"
#: The route of calls no ``inbound.routes`` entry matches.
DEFAULT_ROUTE = "inbound"


def app_upstream(cfg: InboundConfig) -> UpstreamConfig:
    """The app as the upstream every inbound route sends to (see the module docstring)."""
    return UpstreamConfig(
        url=f"http://{cfg.app}",
        timeout=cfg.timeout,
        retry=RetryPolicy(enabled=False),
        circuit_breaker=CircuitBreakerPolicy(enabled=False),
    )


@dataclass(frozen=True, slots=True)
class InboundRouteSpec:
    """One inbound route: its name, what it matches (``None``: everything), who it allows."""

    name: str
    match: RouteMatch | None
    allow: tuple[str, ...]


def routes(cfg: InboundConfig) -> list[InboundRouteSpec]:
    """The inbound routes in matching order, the default route last."""
    out = [
        InboundRouteSpec(r.name or f"inbound-{i}", r.match, tuple(r.allow))
        for i, r in enumerate(cfg.routes)
    ]
    out.append(InboundRouteSpec(DEFAULT_ROUTE, None, tuple(cfg.allow)))
    return out


def allow_list(config: SidecarConfig, route: str) -> tuple[str, ...] | None:
    """The allow-list of inbound route ``route`` (``None``: there is no such route)."""
    if config.inbound is None:
        return None
    for spec in routes(config.inbound):
        if spec.name == route:
            return spec.allow
    return None
