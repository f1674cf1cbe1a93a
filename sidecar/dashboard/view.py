"""The dashboard's JSON (``GET /dashboard/data``), read from the sidecar's own live objects.

Per upstream: the window's rates and percentiles (:mod:`sidecar.dashboard.window`), totals since
start, calls in flight, circuit state (the breaker's own ``describe()``, as ``/upstreams`` shows
it) and health (:func:`sidecar.health.upstream_health`). Then the latest sidecar decisions
(``metrics.recent_errors``), the plugins (as ``/plugins``) and the sidecar's state, version and
uptime. Counters are read through the families' ``collect()`` (the objects Prometheus reads, never
the exposition text), only when the endpoint is read: nothing on the request path changes.

What counts as an error: a call answered 5xx, or one a sidecar decision answered
(``x-sidecar-error``: a 429 ``rate_limited`` is one, an upstream's own 404 is not); on the gRPC
listener, any call whose ``code`` (the gRPC status) is not ``0`` (OK). A call the app abandoned
(499) is neither.

Not here: serving it (:mod:`sidecar.dashboard.endpoints`), the page.
"""

from __future__ import annotations

__all__ = ["UNROUTED", "build", "read_snapshot"]

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config.inbound_routes import APP
from ..errors import SidecarError
from ..grpc.wire import GRPC_LISTENER
from ..health import upstream_health
from ..resilience.views import describe_policies
from ..telemetry.metrics import RECENT_ERRORS, Metrics
from ..version import installed_version
from .window import Counts, Rates, Snapshot, SnapshotRing, rates

if TYPE_CHECKING:
    from ..api import ControlView

#: the row of calls that matched no route (``upstream=""`` in the metrics).
UNROUTED = "(no route)"
#: recent decisions sent to the page: all the deque keeps (the page groups repeats).
RECENT_SHOWN = RECENT_ERRORS
#: the fields of a recent decision the page gets: never more (no header, no query, no body).
RECENT_FIELDS = ("listener", "upstream", "route", "reason", "status", "method", "path", "detail")


def _statuses() -> dict[str, int]:
    """The HTTP status of every sidecar decision code, plugins' errors included."""
    out: dict[str, int] = {}
    todo: list[type[SidecarError]] = [SidecarError]
    while todo:
        cls = todo.pop()
        out.setdefault(cls.code, cls.status)
        todo.extend(cls.__subclasses__())
    return out


def _failed(listener: str, code: str) -> bool:
    if not code.isdigit():
        return False
    if listener == GRPC_LISTENER and len(code) <= 2:
        return code != "0"  # a gRPC status: 0 is OK
    # an HTTP status (a gRPC call counted before its listener reports gRPC codes, too)
    return int(code) >= 500


def _samples(family: Any, suffix: str) -> Iterable[tuple[dict[str, str], float]]:
    for metric in family.collect():
        for s in metric.samples:
            if s.name.endswith(suffix):
                yield s.labels, s.value


def read_snapshot(metrics: Metrics, now: float) -> Snapshot:
    """Every upstream's cumulative counters, at monotonic time ``now``."""
    requests: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    for labels, value in _samples(metrics.requests, "_total"):
        up, code = labels["upstream"], labels["code"]
        requests[up] += value
        if _failed(labels["listener"], code):
            errors[up] += value
    # decisions answered below 500 (429 rate_limited, 401, 404 no_route...): errors all the same.
    # gRPC ones are counted above already (their code is not OK).
    statuses = _statuses()
    for labels, value in _samples(metrics.errors, "_total"):
        if labels["listener"] != GRPC_LISTENER and statuses.get(labels["reason"], 500) < 500:
            errors[labels["upstream"]] += value
    limited: dict[str, float] = defaultdict(float)
    for labels, value in _samples(metrics.rate_limited, "_total"):
        if labels["mode"] == "reject":
            limited[labels["upstream"]] += value
    retries: dict[str, float] = defaultdict(float)
    for labels, value in _samples(metrics.retries, "_total"):
        retries[labels["upstream"]] += value
    # cumulative buckets summed over listeners and routes: still cumulative, per upstream
    bounds = metrics.duration.bounds
    buckets: dict[str, list[float]] = {}
    index = {le: i for i, le in enumerate((*bounds, float("inf")))}
    for labels, value in _samples(metrics.duration, "_bucket"):
        row = buckets.setdefault(labels["upstream"], [0.0] * len(index))
        row[index[float(labels["le"])]] += value
    names = set(requests) | set(limited) | set(retries) | set(buckets)
    return Snapshot(
        t=now,
        upstreams={
            up: Counts(
                requests=requests.get(up, 0.0),
                errors=errors.get(up, 0.0),
                rate_limited=limited.get(up, 0.0),
                retries=retries.get(up, 0.0),
                buckets=tuple(buckets.get(up, ())),
            )
            for up in names
        },
        bounds=bounds,
    )


def _rows(sidecar: ControlView, snap: Snapshot) -> list[tuple[str, str, str | None]]:
    """``(metrics label, shown name, url)``: the configured upstreams in config order, then the
    inbound app, then the unrouted calls once there were some."""
    rows: list[tuple[str, str, str | None]] = [
        (name, name, up.url) for name, up in sidecar.config.upstreams.items()
    ]
    if sidecar.config.inbound is not None:
        rows.append((APP, APP, f"http://{sidecar.config.inbound.app}"))
    if "" in snap.upstreams:
        rows.append(("", UNROUTED, None))
    return rows


def _target(url: str | None) -> str | None:
    # host and port only: what an operator recognises (the config refuses credentials in a URL)
    if url is None:
        return None
    parts = urlsplit(url)
    return parts.netloc or url


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _rates_json(r: Rates) -> dict[str, float | None]:
    return {
        "requests_per_s": _round(r.requests_per_s, 4),
        "errors_per_s": _round(r.errors_per_s, 4),
        "error_ratio": _round(r.error_ratio, 4),
        "p50_s": _round(r.p50_s, 6),
        "p99_s": _round(r.p99_s, 6),
        "rate_limited_per_s": _round(r.rate_limited_per_s, 4),
        "retries_per_s": _round(r.retries_per_s, 4),
    }


def _in_flight(metrics: Metrics) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for labels, value in _samples(metrics.in_flight, ""):
        out[labels["upstream"]] += value
    return out


def build(sidecar: ControlView, ring: SnapshotRing, *, now: float | None = None) -> dict[str, Any]:
    """The endpoint's JSON: takes a snapshot, records it in ``ring`` and diffs it with the base."""
    snap = read_snapshot(sidecar.metrics, time.monotonic() if now is None else now)
    base = ring.add(snap)
    seconds = snap.t - base.t if base is not None else 0.0
    health = upstream_health(sidecar)
    in_flight = _in_flight(sidecar.metrics)
    upstreams = []
    for label, shown, url in _rows(sidecar, snap):
        counts = snap.upstreams.get(label, Counts())
        old = base.upstreams.get(label) if base is not None else None
        policies = describe_policies(sidecar.shared, label) if label else {}
        breaker = policies.get("circuit_breaker")
        up = sidecar.config.upstreams.get(label)
        upstreams.append(
            {
                "name": shown,
                "adapter": up.adapter if up is not None else ("http" if label == APP else None),
                "target": _target(url),
                "health": health.get(label, "unknown"),
                "circuit": breaker,  # None: no breaker configured for it
                "in_flight": int(in_flight.get(label, 0)),
                "window": _rates_json(rates(counts, old, seconds, snap.bounds)),
                "totals": {
                    "requests": int(counts.requests),
                    "errors": int(counts.errors),
                    "rate_limited": int(counts.rate_limited),
                    "retries": int(counts.retries),
                },
            }
        )
    wall = time.time()
    recent = []
    for e in reversed(sidecar.metrics.recent_errors):
        item: dict[str, Any] = {k: e.get(k) for k in RECENT_FIELDS}
        if item["upstream"] == "":
            item["upstream"] = UNROUTED
        item["age_s"] = round(max(0.0, wall - float(e.get("ts", wall))), 3)
        recent.append(item)
        if len(recent) >= RECENT_SHOWN:
            break
    return {
        "sidecar": {
            "state": sidecar.state,
            "version": installed_version(),
            "uptime_s": round(sidecar.uptime, 1),
            "config": sidecar.config_name,
        },
        "generated_at": round(wall, 3),
        "window": {"target_s": ring.window, "seconds": round(seconds, 6)},
        "upstreams": upstreams,
        "recent_errors": recent,
        "plugins": [
            {"name": p.name, "source": p.source, "registered": p.registered}
            for p in sidecar.plugins()
        ],
    }
