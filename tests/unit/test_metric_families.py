"""The lock-free metric families: `/metrics` reads exactly as prometheus_client would write it."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sidecar.telemetry.families import LoopCounter, LoopGauge, LoopHistogram

BUCKETS = (0.0005, 0.001, 0.5, 1.0, 15.0)


def exposition(registry: CollectorRegistry) -> str:
    # creation times differ between the two registries; everything else must not
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())


def test_counter_gauge_and_histogram_expose_what_prometheus_client_would() -> None:
    """Dashboards and alerts keep working: same names, types, labels, buckets and values."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counters = [
        LoopCounter("x_calls", "Calls.", ["route", "code"]),
        Counter("x_calls", "Calls.", ["route", "code"], registry=theirs),
    ]
    gauges = [
        LoopGauge("x_in_flight", "In flight.", ["route"]),
        Gauge("x_in_flight", "In flight.", ["route"], registry=theirs),
    ]
    histograms = [
        LoopHistogram("x_seconds", "Duration.", ["route"], buckets=BUCKETS),
        Histogram("x_seconds", "Duration.", ["route"], buckets=BUCKETS, registry=theirs),
    ]
    for family in (counters[0], gauges[0], histograms[0]):
        ours.register(family)
    for c in counters:
        c.labels("a", "200").inc()
        c.labels("a", "200").inc(2)
        c.labels("b", "504").inc()
    for g in gauges:
        g.labels("a").inc()
        g.labels("a").inc()
        g.labels("a").dec()
        g.labels("b").set(7)
    for h in histograms:
        for v in (0.0001, 0.0005, 0.0007, 0.3, 1.0, 20.0):
            h.labels("a").observe(v)
        h.labels("b").observe(0.002)
    assert exposition(ours) == exposition(theirs)
    assert ours.get_sample_value("x_calls_total", {"route": "a", "code": "200"}) == 3
    assert ours.get_sample_value("x_seconds_bucket", {"route": "a", "le": "0.0005"}) == 2
    assert ours.get_sample_value("x_seconds_count", {"route": "a"}) == 6
