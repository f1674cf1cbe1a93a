"""What one ``llm`` upstream shares across calls, one call's request, and its accounting.

:class:`Upstream` is built with the upstream's handler (its router, provider clients, metrics);
:class:`CallSpec` is one app call as the adapter understood it. :func:`account` counts a call's
usage (metrics, cost, the token budget); :func:`failure_of` and :func:`log_fields` say how an
attempt failed, for the answer and for the log. Not here: the attempts (:mod:`.calls`), the
streams (:mod:`.streaming`).
"""

from __future__ import annotations

__all__ = ["CallSpec", "Upstream", "account", "failure_of", "log", "log_fields"]

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import LLMOptions
from .dialects import Dialect
from .limits import GroupLimiter
from .metrics import LLMMetrics
from .providers import ProviderClient, ProviderFailure
from .router import Router, Target
from .translate.streams import ProviderStreamError, Usage

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

log = logging.getLogger("sidecar.plugin.llm")


@dataclass
class Upstream:
    """What every call to one ``llm`` upstream shares (built with its handler)."""

    name: str
    options: LLMOptions
    router: Router
    clients: dict[str, ProviderClient]
    metrics: LLMMetrics
    #: tasks accounting streamed usage after the app's stream ended (owned by the adapter)
    tasks: set[asyncio.Task[None]]


@dataclass
class CallSpec:
    """One app call: which front, endpoint and group, and its request."""

    dialect: Dialect
    endpoint: str  # chat, embeddings, messages
    group: str
    body: dict[str, Any]
    stream: bool
    include_usage: bool
    limiter: GroupLimiter | None
    limit_key: str
    #: the sidecar's tracer (``None``: tracing is off, no span is made)
    tracer: Tracer | None = None


def failure_of(error: BaseException, target: Target) -> ProviderFailure:
    if isinstance(error, ProviderFailure):
        return error
    if isinstance(error, ProviderStreamError):
        return ProviderFailure("stream", f"the stream failed: {error.error_type}")
    return ProviderFailure("timeout", f"no answer from {target.provider!r} in time")


def log_fields(up: Upstream, spec: CallSpec, target: Target, f: ProviderFailure) -> dict[str, Any]:
    return {
        "upstream": up.name,
        "group": spec.group,
        "provider": target.provider,
        "model": target.model,
        "reason": f.reason,
        "status": f.status,
    }


async def account(up: Upstream, spec: CallSpec, target: Target, usage: Usage) -> None:
    # a stream's counts are the provider's word: a negative one would make the counter raise
    usage = Usage(max(0, usage.input_tokens), max(0, usage.output_tokens))
    up.metrics.used(up.name, spec.group, target, usage, up.options.prices.get(target.model))
    if spec.limiter is not None:
        await spec.limiter.charge(spec.limit_key, usage.input_tokens + usage.output_tokens)
