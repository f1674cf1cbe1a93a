"""The dashboard's recent window: a small ring of counter snapshots, and rates and percentiles
computed from the difference between the newest snapshot and the one at the window's start.

The sidecar's counters are cumulative (calls since start, histogram buckets since start). A rate
over "the last 10 seconds" needs what they were 10 seconds ago, so the dashboard endpoint keeps a
:class:`SnapshotRing`: each read takes a snapshot, keeps it when the last kept one is at least
``spacing`` old, and drops those older than the window's start (but one: the base). The ring is
sampled only when someone reads the dashboard, so nothing runs while nobody looks: after a quiet
spell (no read for two windows) the first read has no base and no rates, the next ones cover the
time since it. The span actually covered is reported with the rates. The ring's size is bounded by
``window / spacing``, whatever the number of readers.

Percentiles are read from histogram buckets like Prometheus' ``histogram_quantile``: linear
interpolation inside the bucket holding the rank; a rank in the ``+Inf`` bucket answers the highest
finite bound. Pure arithmetic here: reading the sidecar's objects is :mod:`sidecar.dashboard.view`.
"""

from __future__ import annotations

__all__ = ["SPACING", "WINDOW", "Counts", "Rates", "Snapshot", "SnapshotRing", "quantile", "rates"]

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: seconds the rates and percentiles cover.
WINDOW = 10.0
#: at most one snapshot kept per this many seconds, however often (and by how many) it is read.
SPACING = 0.5


@dataclass(frozen=True, slots=True)
class Counts:
    """One upstream's cumulative counters at one moment."""

    requests: float = 0.0
    errors: float = 0.0
    rate_limited: float = 0.0
    retries: float = 0.0
    #: cumulative bucket counts of the request duration, one per bound of
    #: :attr:`Snapshot.bounds` then ``+Inf`` (empty when nothing was timed yet).
    buckets: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every upstream's counters at monotonic time ``t``."""

    t: float
    upstreams: Mapping[str, Counts]
    #: the duration histogram's finite upper bounds (seconds), ascending.
    bounds: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Rates:
    """One upstream over the window; ``None`` where there is nothing to tell (no calls, no base)."""

    requests_per_s: float | None
    errors_per_s: float | None
    error_ratio: float | None
    p50_s: float | None
    p99_s: float | None
    rate_limited_per_s: float | None
    retries_per_s: float | None


NO_RATES = Rates(None, None, None, None, None, None, None)


class SnapshotRing:
    """Snapshots spanning the last ``window`` seconds, at least ``spacing`` apart (bounded)."""

    def __init__(self, window: float = WINDOW, spacing: float = SPACING) -> None:
        self.window = window
        self.spacing = spacing
        # the snapshots inside the window, plus the base just before it, plus the newest
        self._ring: deque[Snapshot] = deque(maxlen=math.ceil(window / spacing) + 2)

    def __len__(self) -> int:
        return len(self._ring)

    def add(self, snap: Snapshot) -> Snapshot | None:
        """Record ``snap`` (if spaced enough); return the base to diff it against, ``None`` on the
        very first read."""
        ring = self._ring
        if not ring or snap.t - ring[-1].t >= self.spacing:
            ring.append(snap)
        start = snap.t - self.window
        # keep exactly one snapshot at or before the window's start: the base; and forget one
        # from before a quiet spell (older than two windows): its average would hide the present
        while len(ring) >= 2 and (ring[1].t <= start or ring[0].t < start - self.window):
            ring.popleft()
        base = ring[0]
        return None if base.t >= snap.t else base


def quantile(q: float, bounds: Sequence[float], cumulative: Sequence[float]) -> float | None:
    """The ``q`` quantile (0..1) of a histogram given as cumulative counts per bound then
    ``+Inf``; ``None`` for an empty histogram."""
    if not cumulative:
        return None
    total = cumulative[-1]
    if total <= 0:
        return None
    rank = q * total
    for i, upto in enumerate(cumulative):
        if upto >= rank and upto > 0:
            if i >= len(bounds):  # the +Inf bucket: all we know is "above the last bound"
                return bounds[-1] if bounds else None
            below = cumulative[i - 1] if i else 0.0
            lower = bounds[i - 1] if i else 0.0
            inside = upto - below
            return lower + (bounds[i] - lower) * ((rank - below) / inside if inside else 1.0)
    return bounds[-1] if bounds else None


def rates(new: Counts, old: Counts | None, seconds: float, bounds: Sequence[float]) -> Rates:
    """``new - old`` over ``seconds``. ``old`` is ``None`` for an upstream the base did not know
    yet (its counters started at zero since). Negative differences (never expected: counters
    only grow) count as zero."""
    if seconds <= 0:
        return NO_RATES
    base = old if old is not None else Counts()
    requests = max(0.0, new.requests - base.requests)
    errors = max(0.0, new.errors - base.errors)
    if new.buckets and len(base.buckets) == len(new.buckets):
        timed = [max(0.0, a - b) for a, b in zip(new.buckets, base.buckets, strict=True)]
    else:
        timed = list(new.buckets)
    return Rates(
        requests_per_s=requests / seconds,
        errors_per_s=errors / seconds,
        # a ratio, whatever the counters say (both come from one filter, so errors <= requests)
        error_ratio=min(1.0, errors / requests) if requests else None,
        p50_s=quantile(0.5, bounds, timed),
        p99_s=quantile(0.99, bounds, timed),
        rate_limited_per_s=max(0.0, new.rate_limited - base.rate_limited) / seconds,
        retries_per_s=max(0.0, new.retries - base.retries) / seconds,
    )
