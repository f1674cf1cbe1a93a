"""Load shedding on a real sidecar: past the concurrency limit calls get 503 `overloaded` at once
(exact counts), or wait in a bounded FIFO queue for at most max_wait; /upstreams and /metrics
show slots in use, queued calls and sheds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from sidecar.app import Sidecar
from sidecar.testing import FakeUpstream, async_wait_until, running_sidecar

WAIT = 10.0


def metric(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


class Held:
    """An upstream handler that holds every call until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrived: list[str] = []

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.arrived.append(request.path)
        await asyncio.wait_for(self.release.wait(), WAIT)
        return web.Response(text="ok")


def limiter(s: Sidecar, upstream: str = "slow") -> dict[str, Any]:
    state: dict[str, Any] = s.describe_upstreams()[upstream]["policies"]["concurrency"]
    return state


def client(s: Sidecar) -> httpx.AsyncClient:
    # one connection per concurrent call: the limit, not the client, must be what holds calls
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{s.http_port}",
        timeout=WAIT,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )


async def test_n_plus_k_concurrent_calls_exactly_k_are_shed_at_once() -> None:
    """max_in_flight 4 and 7 concurrent calls to a stuck upstream: 3 get 503 now, 4 wait."""
    held = Held()
    async with FakeUpstream(held) as up:
        cfg = {
            "upstreams": {
                "slow": {
                    "url": up.url,
                    "retry": {"enabled": False},
                    "concurrency": {"max_in_flight": 4},
                }
            }
        }
        async with running_sidecar(cfg) as s, client(s) as c:
            calls = [asyncio.create_task(c.get(f"/slow/{i}")) for i in range(7)]
            await async_wait_until(lambda: len(held.arrived) == 4, WAIT)
            await async_wait_until(lambda: sum(t.done() for t in calls) == 3, WAIT)
            shed = [t.result() for t in calls if t.done()]
            for r in shed:
                assert r.status_code == 503
                assert r.headers["x-sidecar-error"] == "overloaded"
                assert r.headers["retry-after"] == "1"
            # the shed calls were answered while the others are still held at the upstream
            assert len(held.arrived) == 4 and not held.release.is_set()
            assert limiter(s) == {
                "max_in_flight": 4,
                "in_flight": 4,
                "shed": {"limit": 3, "max_wait": 0},
            }
            async with httpx.AsyncClient() as admin:
                text = (await admin.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
            assert metric(text, "sidecar_concurrency_in_flight", upstream="slow") == 4.0
            assert metric(text, "sidecar_concurrency_limit", upstream="slow") == 4.0
            assert metric(text, "sidecar_overloaded_total", upstream="slow", reason="limit") == 3.0
            held.release.set()
            done = await asyncio.gather(*[t for t in calls if not t.done()])
            assert [r.status_code for r in done] == [200] * 4
            assert limiter(s)["in_flight"] == 0
            assert len(up.requests) == 4


async def test_queued_calls_wait_their_turn_in_order_and_succeed() -> None:
    """With a queue, calls past the limit wait (first come, first served) instead of failing;
    only calls past the queue's size are shed."""
    held = Held()
    async with FakeUpstream(held) as up:
        cfg = {
            "upstreams": {
                "slow": {
                    "url": up.url,
                    "retry": {"enabled": False},
                    "concurrency": {"max_in_flight": 2, "queue": 3, "max_wait": "10s"},
                }
            }
        }
        async with running_sidecar(cfg) as s, client(s) as c:
            calls = []
            for i in range(5):
                calls.append(asyncio.create_task(c.get(f"/slow/{i}")))
                # start the next only once this one is in (held or queued): a known order
                await async_wait_until(
                    lambda i=i: len(held.arrived) + limiter(s).get("queue", {})["waiting"] == i + 1
                )
            assert held.arrived == ["/0", "/1"]
            assert limiter(s)["queue"] == {"size": 3, "waiting": 3, "max_wait_s": 10.0}
            extra = await c.get("/slow/5")  # the queue is full: shed at once
            assert extra.headers["x-sidecar-error"] == "overloaded"
            async with httpx.AsyncClient() as admin:
                text = (await admin.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
            assert metric(text, "sidecar_concurrency_queued", upstream="slow") == 3.0
            held.release.set()
            results = await asyncio.gather(*calls)
            assert [r.status_code for r in results] == [200] * 5
            assert held.arrived == ["/0", "/1", "/2", "/3", "/4"]
            assert len(up.requests) == 5
            assert limiter(s)["in_flight"] == 0 and limiter(s)["queue"]["waiting"] == 0


async def test_a_queued_call_gives_up_after_max_wait() -> None:
    """Nobody waits longer than max_wait: then 503 overloaded, counted as `max_wait`."""
    held = Held()
    async with FakeUpstream(held) as up:
        cfg = {
            "upstreams": {
                "slow": {
                    "url": up.url,
                    "retry": {"enabled": False},
                    "concurrency": {"max_in_flight": 1, "queue": 1, "max_wait": "200ms"},
                }
            }
        }
        async with running_sidecar(cfg) as s, client(s) as c:
            first = asyncio.create_task(c.get("/slow/1"))
            await async_wait_until(lambda: len(held.arrived) == 1)
            t0 = time.monotonic()
            r = await c.get("/slow/2")
            waited = time.monotonic() - t0
            assert r.headers["x-sidecar-error"] == "overloaded" and "0.2s" in r.text
            assert 0.19 <= waited < 2.0
            assert limiter(s)["shed"] == {"limit": 0, "max_wait": 1}
            held.release.set()
            assert (await first).status_code == 200
            assert len(up.requests) == 1


async def test_the_limit_is_per_upstream_whatever_the_route() -> None:
    """Routes to one upstream share its slots; another upstream has its own."""
    held = Held()
    async with FakeUpstream(held) as up, FakeUpstream() as other:
        cfg = {
            "upstreams": {
                "slow": {
                    "url": up.url,
                    "retry": {"enabled": False},
                    "concurrency": {"max_in_flight": 1},
                },
                "other": {"url": other.url, "concurrency": {"max_in_flight": 1}},
            },
            "routes": [
                {"name": "checkout", "match": {"path_prefix": "/checkout"}, "upstream": "slow"}
            ],
        }
        async with running_sidecar(cfg) as s, client(s) as c:
            first = asyncio.create_task(c.get("/checkout/x"))
            await async_wait_until(lambda: len(held.arrived) == 1)
            r = await c.get("/slow/y")
            assert r.headers["x-sidecar-error"] == "overloaded"
            assert (await c.get("/other/z")).status_code == 200
            held.release.set()
            assert (await first).status_code == 200


async def test_every_policy_gauge_on_metrics_is_documented() -> None:
    """The scrape-time policy gauges are in docs/operations.md with their labels, like the rest."""
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    async with FakeUpstream() as up:
        cfg = {"upstreams": {"pay": {"url": up.url}}}
        async with running_sidecar(cfg) as s, httpx.AsyncClient() as admin:
            text = (await admin.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    names = {f.name for f in text_string_to_metric_families(text) if f.type == "gauge"}
    policy = {n for n in names if n.startswith(("sidecar_circuit_", "sidecar_concurrency_"))}
    assert policy == {
        "sidecar_circuit_state",
        "sidecar_concurrency_in_flight",
        "sidecar_concurrency_queued",
        "sidecar_concurrency_limit",
    }
    for name in policy:
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{name}`"))
        assert "`upstream`" in row, name
