"""The ``llm`` adapter's Prometheus families, on the sidecar's own registry (``/metrics``).

Label values are bounded by the config: ``upstream``, ``group``, ``provider`` and ``model``
(the provider's model name of a deployment) are configured names, never what the app sent (an
unknown model is refused before anything is counted); ``reason`` is one of the failure reasons
of :class:`~.providers.ProviderFailure` (``connect``, ``timeout``, ``reset``, ``protocol``,
``stream``, ``408``, ``409``, ``429``, ``529``, ``4xx``, ``5xx``, ``untranslatable``);
``direction`` is ``input`` or ``output``; ``outcome`` is ``ok`` or a reason.

- ``sidecar_llm_tokens_total{upstream,group,provider,model,direction}``
- ``sidecar_llm_cost_usd_total{upstream,group,provider,model}`` (from ``prices``)
- ``sidecar_llm_attempts_total{upstream,provider,model,outcome}``
- ``sidecar_llm_failovers_total{upstream,group,reason}``: an attempt failed and the next was tried
- ``sidecar_llm_time_to_first_token_seconds{upstream,provider,model}`` (streams)
- ``sidecar_llm_limited_total{upstream,group,limit}``: calls refused by a group's limit
"""

from __future__ import annotations

__all__ = ["LLMMetrics"]

import weakref
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from .config import Price
from .router import Target
from .translate.streams import Usage

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


class LLMMetrics:
    """The families, registered once per sidecar's registry (:meth:`of`)."""

    @classmethod
    def of(cls, registry: CollectorRegistry) -> LLMMetrics:
        """The families on ``registry``, registered by the first adapter built with it (a
        second adapter on one registry would otherwise be refused as a duplicate)."""
        have = _BY_REGISTRY.get(registry)
        if have is None:
            have = _BY_REGISTRY[registry] = cls(registry)
        return have

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tokens = Counter(
            "sidecar_llm_tokens",
            "LLM tokens, by upstream, group, provider, model and direction.",
            ["upstream", "group", "provider", "model", "direction"],
            registry=registry,
        )
        self.cost = Counter(
            "sidecar_llm_cost_usd",
            "Cost of LLM calls in USD by the configured prices.",
            ["upstream", "group", "provider", "model"],
            registry=registry,
        )
        self.attempts = Counter(
            "sidecar_llm_attempts",
            "Attempts sent to LLM providers, by outcome.",
            ["upstream", "provider", "model", "outcome"],
            registry=registry,
        )
        self.failovers = Counter(
            "sidecar_llm_failovers",
            "Failed LLM attempts after which the next deployment was tried, by reason.",
            ["upstream", "group", "reason"],
            registry=registry,
        )
        self.ttft = Histogram(
            "sidecar_llm_time_to_first_token_seconds",
            "Seconds from a streamed call's start to its first content event.",
            ["upstream", "provider", "model"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.limited = Counter(
            "sidecar_llm_limited",
            "LLM calls refused by a group's limit.",
            ["upstream", "group", "limit"],
            registry=registry,
        )

    def used(
        self, upstream: str, group: str, target: Target, usage: Usage, price: Price | None
    ) -> None:
        labels: tuple[Any, ...] = (upstream, group, target.provider, target.model)
        self.tokens.labels(*labels, "input").inc(usage.input_tokens)
        self.tokens.labels(*labels, "output").inc(usage.output_tokens)
        if price is not None:
            cost = (
                usage.input_tokens * price.input_per_million
                + usage.output_tokens * price.output_per_million
            ) / 1e6
            self.cost.labels(*labels).inc(cost)


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, LLMMetrics] = weakref.WeakKeyDictionary()
