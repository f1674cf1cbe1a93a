"""`/metrics` after real traffic: every core family, moved as the calls imply, bounded labels.

One sidecar, several upstreams that each play one story: plain successes, a 503 storm that is
retried, a breaker that opens, a rate limit, an OAuth2 token, a call cut by its deadline, and
calls with random paths, queries and headers (which must never show up as label values). The
exposition is read over HTTP from the admin port and parsed with prometheus_client's parser, as
a scraper would.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from sidecar.testing import FakeUpstream, running_sidecar

#: family (as the parser names it: counters without ``_total``) → (type, label names)
CORE_FAMILIES = {
    "sidecar_requests": ("counter", {"listener", "upstream", "route", "code"}),
    "sidecar_request_duration_seconds": ("histogram", {"listener", "upstream", "route"}),
    "sidecar_upstream_attempts": ("counter", {"upstream", "outcome"}),
    "sidecar_retries": ("counter", {"upstream", "route", "condition"}),
    "sidecar_circuit_state": ("gauge", {"upstream"}),
    "sidecar_rate_limited": ("counter", {"upstream", "route", "scope", "mode"}),
    "sidecar_upstream_health": ("gauge", {"upstream"}),
    "sidecar_tokens_refreshed": ("counter", {"upstream", "result"}),
}
PROCESS_FAMILIES = {
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_virtual_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
    "python_info": "gauge",
    "python_gc_collections": "counter",
    "python_gc_objects_collected": "counter",
}
UPSTREAMS = {"ok", "flaky", "fragile", "limited", "pay", "slow"}
#: label values that are neither config names nor status codes: each from a fixed vocabulary
WORD = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,39}$")


class Scrape:
    """A parsed exposition: families by name, and sample lookup by exact labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float | None:
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample and s.labels == labels:
                    return float(s.value)
        return None

    def samples(self) -> list[tuple[str, Sample]]:
        return [(f.name, s) for f in self.families.values() for s in f.samples]


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, Any]]:
    """The upstreams: one answering 200, one always 503, an IdP, and one that never answers."""
    release = asyncio.Event()

    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy")

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"access_token": "tok-1", "expires_in": 3600})

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    async with (
        FakeUpstream() as ok,
        FakeUpstream(unavailable) as flaky,
        FakeUpstream(token) as idp,
        FakeUpstream(hang) as slow,
    ):
        try:
            yield {"ok": ok, "flaky": flaky, "idp": idp, "slow": slow}
        finally:
            release.set()


def config(s: dict[str, Any]) -> dict[str, Any]:
    no_retry = {"enabled": False}
    return {
        "upstreams": {
            "ok": {"url": s["ok"].url},
            "flaky": {
                "url": s["flaky"].url,
                "retry": {
                    "attempts": 3,
                    "backoff": {"base": "1ms", "max": "2ms"},
                    "budget": {"min_retries": 1000},  # the budget must not cut this storm
                },
                "circuit_breaker": {"enabled": False},
            },
            "fragile": {
                "url": "http://127.0.0.1:1",  # nothing listens: connect refused
                "retry": no_retry,
                "circuit_breaker": {"consecutive_failures": 2, "open_for": "60s"},
            },
            "limited": {"url": s["ok"].url, "rate_limit": {"rate": "1/min", "burst": 1}},
            "pay": {
                "url": s["ok"].url,
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": f"{s['idp'].url}/token",
                    "client_id": "shop",
                    "client_secret": {"env": "METRICS_TEST_CLIENT_SECRET"},
                },
            },
            "slow": {"url": s["slow"].url, "timeout": "200ms", "retry": no_retry},
        }
    }


def random_token() -> str:
    return f"rnd{secrets.token_hex(8)}"


async def drive(c: httpx.AsyncClient, base: str) -> list[str]:
    """The traffic; returns the random strings sent (none may appear in `/metrics`)."""
    sent: list[str] = []

    async def call(path: str, status: int) -> None:
        noise = [random_token() for _ in range(4)]
        sent.extend(noise)
        r = await c.get(
            f"{base}{path}?{noise[0]}={noise[1]}",
            headers={f"x-{noise[2]}": noise[3], "user-agent": noise[3]},
        )
        assert r.status_code == status, (path, r.status_code, r.text)

    for _ in range(10):
        p = random_token()
        sent.append(p)
        await call(f"/ok/{p}/{random_token()}", 200)
    for _ in range(3):
        p = random_token()
        sent.append(p)
        await call(f"/{p}/x", 404)  # no such upstream
    for _ in range(4):
        await call("/flaky/storm", 503)
    for status in (502, 502, 503):  # two refused connects open the breaker
        await call("/fragile/x", status)
    for status in (200, 429, 429, 429):
        await call("/limited/x", status)
    for _ in range(2):
        await call("/pay/charge", 200)
    await call("/slow/x", 504)
    return sent


async def test_every_core_family_moves_as_the_calls_imply_with_bounded_labels(
    servers: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dashboards and alerts can rely on the core families, and traffic never grows the series."""
    monkeypatch.setenv("METRICS_TEST_CLIENT_SECRET", "metrics-test-secret")
    async with running_sidecar(config(servers)) as sidecar:
        base = f"http://127.0.0.1:{sidecar.http_port}"
        async with httpx.AsyncClient(timeout=10) as c:
            sent = await drive(c, base)
            r = await c.get(f"http://127.0.0.1:{sidecar.admin_port}/metrics")
    assert r.status_code == 200
    scrape = Scrape(r.text)
    fams = scrape.families

    # every family, with its type and label names
    for name, (kind, labels) in CORE_FAMILIES.items():
        assert name in fams, name
        assert fams[name].type == kind, name
        seen = {k for s in fams[name].samples for k in s.labels if k != "le"}
        assert seen == labels, (name, seen)
    for name, kind in PROCESS_FAMILIES.items():
        assert name in fams and fams[name].type == kind, name
    assert scrape.value("process_resident_memory_bytes")  # a real reading, not a zero
    assert (scrape.value("process_open_fds") or 0) > 0

    def requests(upstream: str, code: str) -> float | None:
        return scrape.value(
            "sidecar_requests_total", listener="http", upstream=upstream, route=upstream, code=code
        )

    def attempts(upstream: str, outcome: str) -> float | None:
        return scrape.value("sidecar_upstream_attempts_total", upstream=upstream, outcome=outcome)

    # successes, each timed
    assert requests("ok", "200") == 10
    assert attempts("ok", "response") == 10
    histogram = {"listener": "http", "upstream": "ok", "route": "ok"}
    assert scrape.value("sidecar_request_duration_seconds_count", **histogram) == 10
    assert scrape.value("sidecar_request_duration_seconds_bucket", **histogram, le="+Inf") == 10
    # calls no route took: one series, whatever the path
    unrouted = {"listener": "http", "upstream": "", "route": ""}
    assert scrape.value("sidecar_requests_total", **unrouted, code="404") == 3
    # the 503 storm: 4 calls, 3 attempts each, 2 retries each, all by the condition "503"
    assert requests("flaky", "503") == 4
    assert attempts("flaky", "response") == 12
    retries = {"upstream": "flaky", "route": "flaky", "condition": "503"}
    assert scrape.value("sidecar_retries_total", **retries) == 8
    # the breaker: two refused connects, then open
    assert (requests("fragile", "502"), requests("fragile", "503")) == (2, 1)
    assert attempts("fragile", "upstream_connect") == 2  # the open breaker sent nothing
    assert scrape.value("sidecar_circuit_state", upstream="fragile") == 1
    assert scrape.value("sidecar_circuit_state", upstream="ok") == 0
    assert scrape.value("sidecar_upstream_health", upstream="fragile") == 0
    assert scrape.value("sidecar_upstream_health", upstream="ok") == 1
    to_open = {"upstream": "fragile", "to": "open"}
    assert scrape.value("sidecar_circuit_transitions_total", **to_open) == 1
    errors = {"listener": "http", "upstream": "fragile", "reason": "circuit_open"}
    assert scrape.value("sidecar_errors_total", **errors) == 1
    # the rate limit: one token, three refusals
    assert (requests("limited", "200"), requests("limited", "429")) == (1, 3)
    limited = {"upstream": "limited", "route": "limited", "scope": "local", "mode": "reject"}
    assert scrape.value("sidecar_rate_limited_total", **limited) == 3
    # one token for both calls
    assert requests("pay", "200") == 2
    assert scrape.value("sidecar_tokens_refreshed_total", upstream="pay", result="ok") == 1
    # the attempt the deadline cut is counted too
    assert requests("slow", "504") == 1
    assert attempts("slow", "cancelled") == 1

    # bounded labels: config names, status codes and fixed words only; nothing the app sent
    for family, sample in scrape.samples():
        if not family.startswith("sidecar_") or family == "sidecar_build_info":
            continue
        for key, value in sample.labels.items():
            if key in ("upstream", "route"):
                assert value in UPSTREAMS | {""}, (family, key, value)
            elif key == "listener":
                # the listeners this sidecar has (the gRPC one exists, idle)
                assert value in ("http", "grpc"), (family, value)
            elif key == "code":
                assert re.fullmatch(r"[1-5][0-9][0-9]", value), (family, value)
            elif key != "le":
                assert WORD.match(value), (family, key, value)
    for token in sent:
        assert token not in scrape.text, token
    assert "metrics-test-secret" not in scrape.text and "tok-1" not in scrape.text
