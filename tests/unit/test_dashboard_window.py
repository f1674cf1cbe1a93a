"""The dashboard's window arithmetic: rates, error share and percentiles from cumulative counters
and histogram buckets, over a bounded ring of snapshots."""

from __future__ import annotations

import pytest

from sidecar.dashboard.window import (
    Counts,
    Snapshot,
    SnapshotRing,
    quantile,
    rates,
)

BOUNDS = (0.1, 0.2, 0.5)


def test_quantile_interpolates_inside_the_bucket_like_histogram_quantile() -> None:
    """p50/p99 read like Prometheus' histogram_quantile, so the dashboard and Grafana agree."""
    # 10 calls at or under 100 ms, 10 between 100 and 200 ms
    cumulative = (10, 20, 20, 20)
    assert quantile(0.5, BOUNDS, cumulative) == pytest.approx(0.1)
    assert quantile(0.99, BOUNDS, cumulative) == pytest.approx(0.1 + 0.1 * 9.8 / 10)
    assert quantile(0.25, BOUNDS, cumulative) == pytest.approx(0.05)


def test_quantile_beyond_the_last_bound_is_the_last_bound_and_empty_is_none() -> None:
    """A rank in +Inf says "slower than the last bound" (no made-up number); no calls, no p99."""
    assert quantile(0.99, BOUNDS, (0, 0, 1, 100)) == 0.5
    assert quantile(0.5, BOUNDS, (0, 0, 0, 0)) is None
    assert quantile(0.5, BOUNDS, ()) is None


def test_rates_are_the_difference_over_the_seconds_between_snapshots() -> None:
    """Per-second figures cover the window only, not the time since start."""
    old = Counts(requests=100, errors=10, rate_limited=4, retries=2, buckets=(50, 90, 100, 100))
    new = Counts(requests=150, errors=15, rate_limited=9, retries=7, buckets=(50, 140, 150, 150))
    r = rates(new, old, 10.0, BOUNDS)
    assert r.requests_per_s == pytest.approx(5.0)
    assert r.errors_per_s == pytest.approx(0.5)
    assert r.error_ratio == pytest.approx(0.1)
    assert r.rate_limited_per_s == pytest.approx(0.5)
    assert r.retries_per_s == pytest.approx(0.5)
    # the 50 calls of the window were all between 100 and 200 ms: the old fast ones do not count
    assert r.p50_s == pytest.approx(0.15)
    assert 0.1 < (r.p99_s or 0) <= 0.2


def test_rates_of_an_upstream_new_since_the_base_start_from_zero() -> None:
    """An upstream added by a reload shows its calls at once (its counters began at zero)."""
    r = rates(Counts(requests=20, errors=0, buckets=(20, 20, 20, 20)), None, 4.0, BOUNDS)
    assert r.requests_per_s == pytest.approx(5.0)
    assert r.error_ratio == 0.0
    assert r.p50_s == pytest.approx(0.05)


def test_no_calls_in_the_window_means_no_error_share_and_no_latency() -> None:
    """A quiet upstream shows "–", not 0 % errors and 0 ms."""
    same = Counts(requests=5, errors=1, buckets=(5, 5, 5, 5))
    r = rates(same, same, 10.0, BOUNDS)
    assert r.requests_per_s == 0.0
    assert (r.error_ratio, r.p50_s, r.p99_s) == (None, None, None)
    assert rates(same, same, 0.0, BOUNDS).requests_per_s is None


def snap(t: float, requests: float = 0.0) -> Snapshot:
    return Snapshot(t, {"pay": Counts(requests=requests)}, BOUNDS)


def test_ring_first_read_has_no_base_then_diffs_against_the_window_start() -> None:
    """The first refresh cannot know a rate; later ones cover (at least) the window."""
    ring = SnapshotRing(window=10.0, spacing=0.5)
    assert ring.add(snap(100.0)) is None
    base = ring.add(snap(101.0))
    assert base is not None and base.t == 100.0
    for t in range(102, 130):
        base = ring.add(snap(float(t)))
        assert base is not None
        # the base is the newest snapshot at or before the window's start
        assert t - 10.0 - 1.0 < base.t <= max(100.0, t - 10.0)


def test_ring_is_bounded_however_often_it_is_read() -> None:
    """Many dashboards refreshing fast keep the ring at window/spacing snapshots."""
    ring = SnapshotRing(window=10.0, spacing=0.5)
    t = 0.0
    for _ in range(10_000):
        t += 0.01  # a hundred reads a second
        ring.add(snap(t))
    assert len(ring) <= 10.0 / 0.5 + 2
    # reads closer than the spacing are answered but not kept
    before = len(ring)
    ring.add(snap(t + 0.001))
    assert len(ring) == before


def test_ring_after_a_quiet_spell_starts_again_instead_of_averaging_the_spell() -> None:
    """Nobody looked for a minute: the figures are about now, not an average over that minute."""
    ring = SnapshotRing(window=10.0, spacing=0.5)
    ring.add(snap(0.0, requests=0))
    assert ring.add(snap(60.0, requests=600)) is None
    base = ring.add(snap(61.0, requests=610))
    assert base is not None and base.t == 60.0
    assert len(ring) == 2
