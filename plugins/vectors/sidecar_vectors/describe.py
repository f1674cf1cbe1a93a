"""What the store says about each namespace, asked once and kept: the dimension check's source.

:class:`Catalog` holds one :class:`~.store.Described` per configured namespace (so at most as
many as the config names), for ``describe_ttl``. Concurrent first calls share one question to
the store; a failed question is not kept, so the next call asks again. The dimension and metric
are the store's; the config's ``dimension`` and ``metric`` stand in where the store cannot say
(an empty collection) and must agree where it can. Not here: the calls themselves.
"""

from __future__ import annotations

__all__ = ["Catalog", "Resolved"]

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .config import VectorsOptions
from .scores import Metric
from .store import Described, Store
from .vector_api import ApiError, Record


@dataclass(frozen=True)
class Resolved:
    """A namespace ready for calls: the store's view, and the dimension and metric in force."""

    app_name: str
    described: Described
    dimension: int | None
    metric: Metric

    def check(self, vector: Sequence[float], where: str) -> None:
        """Refuse a vector of another length before the store is called."""
        if self.dimension is not None and len(vector) != self.dimension:
            raise ApiError(
                400,
                "dimension_mismatch",
                f"{where} has {len(vector)} values; namespace {self.app_name!r} holds vectors "
                f"of {self.dimension}",
            )


class Catalog:
    def __init__(
        self,
        store: Store,
        options: VectorsOptions,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._store = store
        self._options = options
        self._clock = clock
        self._known: dict[str, tuple[float, Resolved]] = {}
        self._asking: dict[str, asyncio.Future[Resolved]] = {}

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    async def resolve(self, asked: str | None) -> Resolved:
        """The namespace a call addresses, described; 404 ``unknown_namespace`` otherwise."""
        app_name = self._options.namespace_of(asked)
        if app_name is None:
            raise ApiError(
                400,
                "invalid_request",
                "namespace: this upstream has several; name one "
                f"({', '.join(sorted(self._options.namespaces))})",
            )
        if app_name not in self._options.namespaces:
            raise ApiError(
                404, "unknown_namespace", f"no namespace {app_name[:64]!r} on this upstream"
            )
        have = self._known.get(app_name)
        if have is not None and have[0] > self._now():
            return have[1]
        pending = self._asking.get(app_name)
        if pending is None:
            pending = asyncio.ensure_future(self._ask(app_name))
            self._asking[app_name] = pending
            pending.add_done_callback(lambda done: self._settled(app_name, done))
        # shield: one caller leaving (its deadline) does not cancel the others' question
        return await asyncio.shield(pending)

    def _settled(self, app_name: str, done: asyncio.Future[Resolved]) -> None:
        self._asking.pop(app_name, None)
        if not done.cancelled():
            done.exception()  # read here: every caller may have left (their deadlines)

    async def _ask(self, app_name: str) -> Resolved:
        described = await self._store.describe(self._options.namespaces[app_name])
        resolved = self._resolve(app_name, described)
        self._known[app_name] = (self._now() + self._options.describe_ttl, resolved)
        return resolved

    def _resolve(self, app_name: str, described: Described) -> Resolved:
        configured = self._options.dimension
        if described.dimension and configured and described.dimension != configured:
            raise ApiError(
                502,
                "config_mismatch",
                f"namespace {app_name!r}: the store holds vectors of {described.dimension}, "
                f"the config says dimension {configured}",
            )
        if described.reported is not None and described.metric is None:
            raise ApiError(
                502,
                "config_mismatch",
                f"namespace {app_name!r}: the store uses the metric {described.reported[:32]!r}, "
                "which has no normalised score here (cosine, dot, euclidean)",
            )
        metric = described.metric or self._options.metric
        if metric is None:
            raise ApiError(
                502,
                "config_mismatch",
                f"namespace {app_name!r}: the store reports no metric the sidecar can "
                "normalise (cosine, dot, euclidean); set options.metric if it uses one",
            )
        if self._options.metric is not None and described.metric not in (
            None,
            self._options.metric,
        ):
            raise ApiError(
                502,
                "config_mismatch",
                f"namespace {app_name!r}: the store uses {described.metric}, the config says "
                f"{self._options.metric}",
            )
        return Resolved(app_name, described, described.dimension or configured, metric)

    def after_upsert(self, ns: Resolved, records: Sequence[Record]) -> None:
        """Forget what the store said when an upsert may have changed it: a first vector set
        the dimension, or a field got a kind of value the store's schema did not list (the
        filter translation of Weaviate and Chroma depends on it)."""
        described = ns.described
        if described.dimension is None:
            self._known.pop(ns.app_name, None)
            return
        if described.properties is None:
            return
        kinds = dict(described.properties)
        if self._options.backend == "weaviate":
            kinds.setdefault(self._options.weaviate_id_property, frozenset())
            if self._options.weaviate_id_property not in described.properties:
                self._known.pop(ns.app_name, None)
                return
        for record in records:
            for key, value in record.metadata.items():
                have = kinds.get(key)
                if have is None or not _fits(value, have, self._options.backend):
                    self._known.pop(ns.app_name, None)
                    return

    def describe(self) -> dict[str, object]:
        """What is known now, for ``/upstreams``."""
        return {
            name: {"dimension": r.dimension, "metric": r.metric}
            for name, (_, r) in self._known.items()
        }


def _fits(value: object, kinds: frozenset[str], backend: str) -> bool:
    """Whether a written value is of a kind the cached schema already lists."""
    if isinstance(value, bool):
        kind = "boolean"
    elif isinstance(value, int):
        # Weaviate keeps an integer in a number property as a number
        kind = "number" if backend == "weaviate" and "number" in kinds else "int"
    elif isinstance(value, float):
        kind = "number"
    else:
        kind = "text"
    return kind in kinds
