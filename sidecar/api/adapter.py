"""Protocol adapters: the base class, what the sidecar lends them, and their registry."""

from __future__ import annotations

__all__ = ["Adapter", "AdapterRegistry", "AdapterServices"]

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from ..outcomes import Classifier, classify_http
from .registry import Registry
from .traits import AdapterTraits

if TYPE_CHECKING:
    from ..chain import Handler
    from ..config.models import UpstreamConfig
    from ..telemetry.metrics import Metrics


@dataclass(frozen=True)
class AdapterServices:
    """What the sidecar lends every adapter instance."""

    metrics: Metrics
    log: logging.Logger


class Adapter:
    """Base class of protocol adapters.

    One instance per running sidecar. :meth:`handler` builds the terminal handler of one upstream
    for the current config; it is called at start-up and again for each reload, so an adapter keeps
    connection pools keyed by what they depend on and closes the ones no config uses any more in
    :meth:`retire`.
    """

    #: validates ``upstreams.<name>.options`` for upstreams using this adapter.
    options_model: ClassVar[type[BaseModel] | None] = None
    #: what this adapter is, as filters need to know it (how its upstream answers...).
    traits: ClassVar[AdapterTraits] = AdapterTraits()

    def __init__(self, services: AdapterServices) -> None:
        self.services = services

    def handler(self, name: str, upstream: UpstreamConfig) -> Handler:
        raise NotImplementedError

    def classifier(self, name: str, upstream: UpstreamConfig) -> Classifier:
        """How this adapter's calls ended, as condition names retry and the breaker match
        (:mod:`sidecar.outcomes`). The default knows the sidecar's transport errors and HTTP
        statuses; protocols with their own failure signals override it."""
        return classify_http

    async def retire(self, live: Mapping[str, UpstreamConfig]) -> None:
        """Close what no upstream in ``live`` uses any more (after a reload drained)."""

    def describe(self, name: str) -> dict[str, Any]:
        """State of one upstream for ``/upstreams`` (pool sizes, health...)."""
        return {}

    def health(self, name: str) -> bool | None:
        """Whether the upstream can be reached now (``False``: a channel in transient failure),
        ``None`` when the adapter does not track it. Read by health checks, never per call."""
        return None

    async def aclose(self) -> None:
        """Close every connection (shutdown)."""


class AdapterRegistry(Registry[type[Adapter]]):
    """Adapter classes by the name ``upstreams.<u>.adapter`` uses."""

    kind = "adapter"

    def add(self, name: str, adapter: type[Adapter]) -> None:
        self._add(name, adapter)
