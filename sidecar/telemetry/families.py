"""Metric families the data path updates on every call: plain numbers, no lock, read at scrape.

``prometheus_client``'s metrics take a ``threading.Lock`` on every ``inc``/``observe`` and check
their arguments: about 0.4 µs an operation, six operations a call. Calls and scrapes both run on
the event loop thread, so nothing needs the lock: these families keep plain ``int``/``float``
values in per-label children (resolved once, when routes are composed) and build the same
exposition as ``Counter``, ``Gauge`` and ``Histogram`` at scrape time (``_total``, ``_created``,
cumulative ``_bucket``/``_count``/``_sum``).

Not thread-safe by design: update them from the event loop only. Not here: which families exist
(:mod:`sidecar.telemetry.metrics`).
"""

from __future__ import annotations

__all__ = [
    "CounterChild",
    "GaugeChild",
    "HistogramChild",
    "LoopCounter",
    "LoopGauge",
    "LoopHistogram",
]

import time
from collections.abc import Iterable, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

C = TypeVar("C")


class CounterChild:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class GaugeChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class HistogramChild:
    __slots__ = ("_bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        #: per bucket, not cumulative; the last one is ``+Inf``.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        # le is inclusive: the first bound >= value. A loop over the bounds, not bisect: a
        # latency here mostly falls in the first few buckets, and compiled, each step is a
        # compare of two C doubles where bisect calls out and compares float objects.
        at = 0
        for bound in self._bounds:
            if value <= bound:
                break
            at += 1
        self.counts[at] += 1
        self.sum += value


class _Family(Generic[C]):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}

    def labels(self, *values: str) -> C:
        """The child for these label values, created on first use (keep it: this is a lookup)."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new()
        return child

    def _new(self) -> C:
        raise NotImplementedError

    def collect(self) -> Iterable[Any]:
        raise NotImplementedError

    def describe(self) -> Iterable[Any]:
        return self.collect()


class LoopCounter(_Family[CounterChild]):
    """A labelled counter (``<name>_total``) without locks; see the module docstring."""

    def _new(self) -> CounterChild:
        return CounterChild()

    def collect(self) -> Iterable[Any]:
        fam = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._children.items():
            fam.add_metric(list(values), child.value, created=child.created)
        yield fam


class LoopGauge(_Family[GaugeChild]):
    """A labelled gauge without locks; see the module docstring."""

    def _new(self) -> GaugeChild:
        return GaugeChild()

    def collect(self) -> Iterable[Any]:
        fam = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._children.items():
            fam.add_metric(list(values), child.value)
        yield fam


class LoopHistogram(_Family[HistogramChild]):
    """A labelled histogram without locks; see the module docstring."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self.bounds = tuple(float(b) for b in buckets)
        # the ``le`` label values exactly as prometheus_client writes them
        self._le = [floatToGoString(b) for b in (*self.bounds, float("inf"))]  # type: ignore[no-untyped-call]

    def _new(self) -> HistogramChild:
        return HistogramChild(self.bounds)

    def collect(self) -> Iterable[Any]:
        fam = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._children.items():
            cumulative = 0
            buckets = []
            for le, count in zip(self._le, child.counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            fam.add_metric(list(values), buckets, child.sum)
            # prometheus_client's Histogram also exposes when each series began
            labels = dict(zip(self.labelnames, values, strict=True))
            fam.samples.append(Sample(f"{self.name}_created", labels, child.created))
        yield fam
