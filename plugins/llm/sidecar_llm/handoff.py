"""The ``llm_gateway`` filter: what the adapter needs from the running sidecar, per upstream.

An adapter is built before the sidecar's resources exist and is never given them; a filter
factory is (``RouteContext.resources``). So this filter, on routes to ``llm`` upstreams only,
resolves once per composition the live rate-limit backends of each group's ``limits``
(``live_ratelimit_backend``) and the sidecar's tracer (``plugin_tracer``, ``None`` with tracing
off), and hands them to the adapter in the call's stash: one dict write per call. Routes to
other upstreams do not get the filter at all.

A group's ``limits.backend`` that names no configured backend stops start-up (and ``sidecar
check``) at ``upstreams.<u>.options.groups.<g>.limits.backend``.
"""

from __future__ import annotations

__all__ = ["HANDOFF", "Handoff", "make_filter"]

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidecar import (
    AuthConfigProblem,
    Exchange,
    Filter,
    Handler,
    Response,
    RouteContext,
    StashKey,
    live_ratelimit_backend,
    plugin_tracer,
)

from .config import LLMOptions
from .limits import GroupLimiter

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

#: the instrumentation scope of the gateway's spans
SCOPE = "sidecar-llm"


@dataclass(frozen=True)
class Handoff:
    """One upstream's limiters (by group; groups without ``limits`` are absent) and tracer."""

    limiters: dict[str, GroupLimiter]
    tracer: Tracer | None


HANDOFF: StashKey[Handoff] = StashKey("llm.handoff")


def make_filter(ctx: RouteContext) -> Filter | None:
    """The ``llm_gateway`` filter of a route to an ``llm`` upstream, else ``None``."""
    upstream = ctx.upstream
    if upstream.adapter != "llm":
        return None
    options = LLMOptions.model_validate(upstream.options)
    limiters: dict[str, GroupLimiter] = {}
    for name, group in options.groups.items():
        if group.limits is None:
            continue
        try:
            backend = live_ratelimit_backend(ctx.resources, ctx.config, group.limits.backend)
        except KeyError as e:
            raise AuthConfigProblem(f"options.groups.{name}.limits.backend", e.args[0]) from None
        limiters[name] = GroupLimiter(backend, group.limits, ctx.upstream_name, name)
    tracer = plugin_tracer(ctx.resources, SCOPE)
    if not limiters and tracer is None:
        return None
    handoff = Handoff(limiters, tracer)

    async def llm_gateway(exchange: Exchange, call_next: Handler) -> Response:
        exchange.stash[HANDOFF] = handoff
        return await call_next(exchange)

    return llm_gateway
