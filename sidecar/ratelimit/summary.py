"""The rate limits a config sets, one line each, as ``sidecar check`` prints them.

A limit's ``burst`` decides how many calls pass at once, and its default (the rate's own count
for its period: ``10/min`` admits 10 at once) is easy to guess wrong, so ``check`` says what
each limit will do::

    payments: rate 10/min, burst 10 (default: the rate's count per period)
    payments: global rate 1000/min on backend shared, burst 50
    routes[0] (pay-slow): rate 1/s, burst 1 (default: the rate's count per period)

Not here: the limiting itself (:mod:`sidecar.filters.rate_limit`,
:mod:`sidecar.filters.global_rate_limit`).
"""

from __future__ import annotations

__all__ = ["limit_lines"]

from ..config.models import SidecarConfig
from ..config.policies import GlobalRateLimitPolicy, RateLimitPolicy

#: Said of a burst the config left unset.
DEFAULT_BURST = "(default: the rate's count per period)"


def limit_lines(config: SidecarConfig) -> list[str]:
    """One line per enabled limit: upstreams first (in file order), then routes' own limits."""
    lines = []
    for name, up in config.upstreams.items():
        lines += _lines(name, up.rate_limit, up.global_rate_limit)
    for i, route in enumerate(config.routes):
        where = f"routes[{i}] ({route.name})" if route.name else f"routes[{i}]"
        lines += _lines(where, route.rate_limit, route.global_rate_limit)
    return lines


def _lines(
    where: str, local: RateLimitPolicy | None, shared: GlobalRateLimitPolicy | None
) -> list[str]:
    out = []
    if local is not None and local.enabled:
        out.append(f"{where}: rate {local.rate}, {_burst(local.burst, local.bucket_size)}")
    if shared is not None and shared.enabled:
        out.append(
            f"{where}: global rate {shared.rate} on backend {shared.backend}, "
            f"{_burst(shared.burst, shared.bucket_size)}"
        )
    return out


def _burst(configured: int | None, size: int) -> str:
    return f"burst {size}" if configured is not None else f"burst {size} {DEFAULT_BURST}"
