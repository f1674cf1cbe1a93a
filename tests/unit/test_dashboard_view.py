"""The dashboard's JSON, read from a sidecar's live metric objects (no sockets: the sidecar is
built, not started)."""

from __future__ import annotations

import time

import pytest
import yaml

from sidecar.app import Sidecar
from sidecar.config import parse_config
from sidecar.dashboard.view import UNROUTED, build, read_snapshot
from sidecar.dashboard.window import SnapshotRing
from sidecar.telemetry.metrics import RECENT_ERRORS, Metrics
from sidecar.testing import isolated_plugin_host


def sidecar(upstreams: dict[str, object] | None = None) -> Sidecar:
    data = {"upstreams": upstreams or {"pay": {"url": "http://127.0.0.1:9"}}}
    cfg = parse_config(yaml.safe_dump(data, sort_keys=False), "<test>")
    return Sidecar(cfg, plugin_host=isolated_plugin_host())


def record(
    m: Metrics, upstream: str, *codes: int, listener: str = "http", took: float = 0.003
) -> None:
    rm = m.route(listener, upstream, upstream)
    for code in codes:
        rm.count(code)
        rm.duration.observe(took)


def test_errors_are_5xx_and_sidecar_decisions_not_upstream_4xx() -> None:
    """Error share: what failed, or what the sidecar refused (a 429 is one), never an app's 404."""
    m = Metrics()
    record(m, "pay", 200, 200, 404, 502, 429, 499)
    m.errors.labels("http", "pay", "upstream_connect").inc()  # the 502: counted once, not twice
    m.errors.labels("http", "pay", "rate_limited").inc()  # the 429: a decision below 500
    counts = read_snapshot(m, 0.0).upstreams["pay"]
    assert (counts.requests, counts.errors) == (6, 2)


def test_grpc_calls_fail_on_any_non_ok_status() -> None:
    """On the gRPC listener the code is the gRPC status: every non-OK call is an error."""
    m = Metrics()
    record(m, "inv", 0, 0, 0, 5, 14, listener="grpc")
    m.errors.labels("grpc", "inv", "rate_limited").inc()  # already in code 8/14: not again
    counts = read_snapshot(m, 0.0).upstreams["inv"]
    assert (counts.requests, counts.errors) == (5, 2)


def test_grpc_calls_counted_with_http_statuses_fail_on_5xx_only() -> None:
    """A gRPC call counted with an HTTP status (200 for every answer) is not taken for a failure."""
    m = Metrics()
    record(m, "inv", 200, 200, 503, listener="grpc")
    assert read_snapshot(m, 0.0).upstreams["inv"].errors == 1


def test_rejections_retries_and_latency_are_summed_per_upstream() -> None:
    """One row per upstream, whatever its routes: rejections only (not waits), every retry."""
    m = Metrics()
    record(m, "pay", 200, 200, took=0.003)
    m.route("http", "pay", "pay-admin").duration.observe(0.003)
    m.rate_limited.labels("pay", "pay", "local", "reject").inc(3)
    m.rate_limited.labels("pay", "pay-admin", "global", "reject").inc(2)
    m.rate_limited.labels("pay", "pay", "local", "wait").inc(7)
    m.retries.labels("pay", "pay", "connect-failure").inc(4)
    m.retries.labels("pay", "pay-admin", "503").inc(1)
    snap = read_snapshot(m, 0.0)
    counts = snap.upstreams["pay"]
    assert (counts.rate_limited, counts.retries) == (5, 5)
    assert snap.bounds == m.duration.bounds
    # 3 timings of 3 ms: all in the (2.5 ms, 5 ms] bucket, cumulative from there on
    i = snap.bounds.index(0.005)
    assert counts.buckets[i - 1] == 0 and counts.buckets[i] == 3 and counts.buckets[-1] == 3


def test_build_reports_the_window_rates_and_totals_of_known_calls() -> None:
    """After a known number of calls in a known time, the JSON says exactly that."""
    s = sidecar({"pay": {"url": "http://127.0.0.1:9"}, "ledger": {"url": "http://127.0.0.1:8"}})
    ring = SnapshotRing()
    first = build(s, ring, now=1000.0)
    assert [u["name"] for u in first["upstreams"]] == ["pay", "ledger"]  # config order
    assert first["upstreams"][0]["window"]["requests_per_s"] is None  # nothing to diff yet
    record(s.metrics, "pay", *([200] * 18), 503, 503, took=0.02)
    data = build(s, ring, now=1004.0)
    assert data["window"] == {"target_s": 10.0, "seconds": 4.0}
    pay = data["upstreams"][0]
    assert pay["window"]["requests_per_s"] == 5.0
    assert pay["window"]["errors_per_s"] == 0.5
    assert pay["window"]["error_ratio"] == 0.1
    assert 0.01 < pay["window"]["p50_s"] <= 0.025
    assert pay["totals"] == {"requests": 20, "errors": 2, "rate_limited": 0, "retries": 0}
    assert pay["target"] == "127.0.0.1:9" and pay["adapter"] == "http"
    assert pay["health"] == "unknown"  # not started: nothing known yet
    ledger = data["upstreams"][1]
    assert ledger["window"]["requests_per_s"] == 0.0 and ledger["window"]["p99_s"] is None
    assert data["sidecar"]["state"] == "starting"
    assert data["sidecar"]["uptime_s"] >= 0
    assert any(p["name"] == "sidecar.admin_routes" for p in data["plugins"])


def test_unrouted_calls_get_their_own_row_once_there_are_some() -> None:
    """Calls that matched no upstream are visible, but only when there are any."""
    s = sidecar()
    assert [u["name"] for u in build(s, SnapshotRing(), now=1.0)["upstreams"]] == ["pay"]
    s.metrics.requests.labels("http", "", "", "404").inc()
    s.metrics.errors.labels("http", "", "no_route").inc()
    rows = build(s, SnapshotRing(), now=2.0)["upstreams"]
    assert [u["name"] for u in rows] == ["pay", UNROUTED]
    assert rows[1]["totals"]["errors"] == 1


def test_recent_errors_are_newest_first_bounded_and_carry_only_known_fields() -> None:
    """Recent decisions show what happened, never more than the whitelisted fields."""
    s = sidecar()
    now = time.time()
    for i in range(RECENT_ERRORS + 20):
        s.metrics.recent_errors.append(
            {
                "ts": now - 1,
                "listener": "http",
                "upstream": "pay",
                "route": "pay",
                "reason": "upstream_connect",
                "status": 502,
                "method": "GET",
                "path": f"/call/{i}",
                "detail": "connect failed",
                "authorization": "Bearer s3cr3t",  # a field someone might add one day
            }
        )
    recent = build(s, SnapshotRing(), now=1.0)["recent_errors"]
    assert len(recent) == RECENT_ERRORS
    assert recent[0]["path"] == f"/call/{RECENT_ERRORS + 19}"
    assert set(recent[0]) == {
        "listener",
        "upstream",
        "route",
        "reason",
        "status",
        "method",
        "path",
        "detail",
        "age_s",
    }
    assert recent[0]["age_s"] == pytest.approx(1.0, abs=0.5)
    assert "s3cr3t" not in repr(recent)
