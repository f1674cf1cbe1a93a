"""The dashboard on a running sidecar: the page is one self-contained HTML file, and its JSON
reports what really happened to known calls, without ever showing a secret."""

from __future__ import annotations

import re

import httpx
import pytest
from aiohttp import web

from sidecar.testing import FakeUpstream, running_sidecar

CANARY = "dash-LEAKCANARY-4242"


async def test_page_is_html_and_references_nothing_outside_the_sidecar() -> None:
    """The dashboard works offline and behind any firewall: no CDN, font or script elsewhere."""
    async with running_sidecar({"upstreams": {}}) as s, httpx.AsyncClient() as c:
        r = await c.get(f"http://127.0.0.1:{s.admin_port}/dashboard")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    page = r.text
    assert "<table" in page and "dashboard/data" in page
    # no URL with a host, in any attribute, style or script
    assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", page, re.I) == []
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import", page, re.I)
    assert not re.search(r"url\((?!data:)", page)  # CSS url(), not the script's URL()


async def failing(request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


async def test_data_reports_rates_totals_errors_and_limits_after_known_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After 6 good calls, 2 upstream 500s, a rate-limit rejection and a refused connection, the
    JSON says exactly that, and the recent decisions say why."""
    monkeypatch.setenv("DASH_API_KEY", CANARY)
    async with FakeUpstream() as good, FakeUpstream(failing) as bad:
        cfg = {
            "upstreams": {
                "pay": {
                    "url": good.url,
                    "auth": {"type": "api_key", "key": {"env": "DASH_API_KEY"}},
                    "rate_limit": {"rate": "1/min", "burst": 6},
                },
                "ledger": {"url": bad.url, "retry": {"enabled": False}},
                "gone": {
                    "url": "http://127.0.0.1:9",
                    "retry": {"enabled": False},
                    "circuit_breaker": {"consecutive_failures": 50},
                },
            }
        }
        async with (
            running_sidecar(cfg) as s,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}") as app,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.admin_port}") as admin,
        ):
            before = (await admin.get("/dashboard/data")).json()
            for _ in range(6):
                assert (await app.get("/pay/orders")).status_code == 200
            limited = await app.get("/pay/orders", params={"token": CANARY})
            assert limited.status_code == 429
            for _ in range(2):
                assert (await app.get("/ledger/entries")).status_code == 500
            assert (await app.get("/gone/x")).headers["x-sidecar-error"] == "upstream_connect"
            r = await admin.get("/dashboard/data")
            assert r.headers["content-type"].startswith("application/json")
            data = r.json()

    assert before["window"]["seconds"] == 0.0  # the first read has nothing to diff against
    assert data["sidecar"]["state"] == "ready"
    assert data["window"]["seconds"] > 0
    seconds = data["window"]["seconds"]
    rows = {u["name"]: u for u in data["upstreams"]}
    assert set(rows) == {"pay", "ledger", "gone"}

    pay, ledger, gone = rows["pay"], rows["ledger"], rows["gone"]
    assert pay["totals"] == {"requests": 7, "errors": 1, "rate_limited": 1, "retries": 0}
    assert abs(pay["window"]["requests_per_s"] * seconds - 7) < 0.05
    assert abs(pay["window"]["rate_limited_per_s"] * seconds - 1) < 0.05
    assert abs(pay["window"]["error_ratio"] - 1 / 7) < 0.001
    assert pay["window"]["p50_s"] is not None and pay["window"]["p50_s"] < 1
    assert pay["circuit"]["state"] == "closed" and pay["health"] == "healthy"

    # an upstream's own 500 is an error; it is not a sidecar decision
    assert ledger["totals"]["requests"] == 2 and ledger["totals"]["errors"] == 2
    assert ledger["window"]["error_ratio"] == 1.0
    assert gone["totals"]["errors"] == 1
    assert gone["circuit"]["consecutive_failures"] == 1

    reasons = [(e["upstream"], e["reason"], e["status"]) for e in data["recent_errors"]]
    assert reasons == [("gone", "upstream_connect", 502), ("pay", "rate_limited", 429)]
    assert data["recent_errors"][1]["path"] == "/orders"  # the path, never the query
    assert {"sidecar.filters", "sidecar.admin_routes"} <= {p["name"] for p in data["plugins"]}
    # the API key went to the upstream, and appears nowhere on the dashboard
    assert ("x-api-key", CANARY) in [(k.lower(), v) for k, v in good.requests[0].raw_headers]
    assert CANARY not in r.text
