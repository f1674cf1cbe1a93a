"""The dashboard in a real browser (headless Chromium over DevTools): the upstream rows render,
a breaker forced open shows as open within a few refreshes, and a sidecar that goes away is
called unreachable. The screenshot lands in ``test-artifacts/dashboard.png``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from sidecar.testing import FakeUpstream, running_sidecar

from .chromium import Chromium, Page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: the page refreshes every second: "a few refreshes"
FEW_REFRESHES = 6.0


def refused_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def poll(page: Page, expression: str, limit: float, ok: Callable[[Any], bool]) -> Any:
    """Evaluate ``expression`` until ``ok(value)`` (bounded by ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    while True:
        value = await page.evaluate(expression)
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{expression} is still {value!r} after {limit}s")
        await asyncio.sleep(0.1)


def circuit_of(name: str) -> str:
    return (
        f"document.querySelector('tr[data-upstream={json.dumps(name)}] [data-circuit]')"
        "?.dataset.circuit ?? null"
    )


async def steady_traffic(call: Callable[[], Awaitable[object]], per_second: float) -> None:
    while True:
        with contextlib.suppress(httpx.HTTPError):
            await call()
        await asyncio.sleep(1 / per_second)


async def test_dashboard_renders_and_shows_a_breaker_opening() -> None:
    """An operator watching the dashboard sees each upstream and, soon after, an open breaker."""
    async with FakeUpstream() as up:
        cfg = {
            "upstreams": {
                "payments": {"url": up.url, "rate_limit": {"rate": "15/s", "burst": 3}},
                "ledger": {
                    "url": f"http://127.0.0.1:{refused_port()}",
                    "retry": {"attempts": 2},
                    "circuit_breaker": {"consecutive_failures": 3, "open_for": "60s"},
                },
            }
        }
        async with (
            running_sidecar(cfg) as s,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=5) as app,
            Chromium() as browser,
        ):
            page = await browser.new_page(1366, 768)
            await page.navigate(f"http://127.0.0.1:{s.admin_port}/dashboard")
            rows = (
                "[...document.querySelectorAll('tr[data-upstream]')].map(r => r.dataset.upstream)"
            )
            names = await poll(page, rows, 10, lambda v: bool(v) and len(v) == 2)
            assert sorted(names) == ["ledger", "payments"]
            assert await page.evaluate(circuit_of("ledger")) == "closed"

            traffic = asyncio.create_task(steady_traffic(lambda: app.get("/payments/orders"), 25))
            try:
                # the upstream refuses connections: with retries, a couple of calls trip it
                for _ in range(3):
                    r = await app.get("/ledger/entries")
                    assert r.status_code in (502, 503)
                assert s.describe_upstreams()["ledger"]["policies"]["circuit_breaker"]["state"] == (
                    "open"
                )
                await poll(page, circuit_of("ledger"), FEW_REFRESHES, lambda v: v == "open")
                assert await page.evaluate(circuit_of("payments")) == "closed"
                # the open row is marked as a whole, and the headline card counts it
                assert await page.evaluate(
                    "document.querySelector('tr[data-upstream=\"ledger\"]').classList.contains('open')"
                )
                await poll(
                    page,
                    "document.querySelector('#errors').textContent",
                    FEW_REFRESHES,
                    lambda v: "circuit_open" in v and "upstream_connect" in v,
                )
                # let the rates and sparklines fill in before the picture
                await poll(
                    page,
                    "document.querySelector('tr[data-upstream=\"payments\"] .spark') !== null",
                    FEW_REFRESHES,
                    bool,
                )
                await asyncio.sleep(2.5)
                ARTIFACTS.mkdir(exist_ok=True)
                (ARTIFACTS / "dashboard.png").write_bytes(await page.screenshot())
                assert page.problems() == []
            finally:
                traffic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await traffic

            # the sidecar goes away: the page says so instead of showing old figures as live
            await s.drain()
            await poll(page, "document.body.classList.contains('stale')", FEW_REFRESHES, bool)
            banner = await page.evaluate("document.getElementById('banner').textContent")
            assert "unreachable" in banner
            (ARTIFACTS / "dashboard-unreachable.png").write_bytes(await page.screenshot())
