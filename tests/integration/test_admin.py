"""The admin port: probes, Prometheus metrics, the redacted config and upstream state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from sidecar.api import LifespanRegistry, hookimpl
from sidecar.app import Sidecar
from sidecar.config import parse_config
from sidecar.testing import (
    FakeUpstream,
    SidecarProcess,
    async_wait_until,
    isolated_plugin_host,
    running_sidecar,
)


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels`` (None if absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_healthz_and_readyz_answer_200_when_ready() -> None:
    """Kubernetes probes: liveness and readiness both pass on a started sidecar."""
    async with running_sidecar({"upstreams": {}}) as s, httpx.AsyncClient() as c:
        admin = f"http://127.0.0.1:{s.admin_port}"
        r = await c.get(f"{admin}/healthz")
        assert (r.status_code, r.json()) == (200, {"status": "ok"})
        r = await c.get(f"{admin}/readyz")
        assert (r.status_code, r.json()) == (200, {"status": "ready"})


class SlowStart:
    """A plugin whose lifespan holds start-up until the test releases it."""

    name = "slow_start"

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    @hookimpl
    def sidecar_register_lifespans(self, registry: LifespanRegistry) -> None:
        registry.add("slow", self.lifespan)

    @asynccontextmanager
    async def lifespan(self, sidecar: Sidecar) -> AsyncIterator[None]:
        self.entered.set()
        await self.release.wait()
        yield


async def test_readyz_is_503_while_starting_and_healthz_already_answers() -> None:
    """A slow start-up (token prefetch, say) reads as "not ready", not as a dead process."""
    plugin = SlowStart()
    cfg = parse_config(
        "admin: {address: 127.0.0.1:0}\nhttp: {address: 127.0.0.1:0}\n"
        "grpc: {address: 127.0.0.1:0}\n",
        "<t>",
    )
    sidecar = Sidecar(cfg, plugin_host=isolated_plugin_host(plugin))
    starting = asyncio.create_task(sidecar.start())
    try:
        await asyncio.wait_for(plugin.entered.wait(), 10)
        async with httpx.AsyncClient() as c:
            admin = f"http://127.0.0.1:{sidecar.admin_port}"
            r = await c.get(f"{admin}/readyz")
            assert (r.status_code, r.json()) == (503, {"status": "starting"})
            assert (await c.get(f"{admin}/healthz")).status_code == 200
            plugin.release.set()
            await asyncio.wait_for(starting, 10)
            assert (await c.get(f"{admin}/readyz")).status_code == 200
    finally:
        plugin.release.set()
        await asyncio.wait_for(starting, 10)
        await sidecar.drain()


async def test_readyz_is_503_while_draining_and_in_flight_calls_finish() -> None:
    """During a drain the load balancer is told to stop sending, while calls in flight complete."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    async with FakeUpstream(slow) as up, httpx.AsyncClient() as c:
        async with running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s:
            admin = f"http://127.0.0.1:{s.admin_port}"
            call = asyncio.create_task(c.get(f"http://127.0.0.1:{s.http_port}/up/x"))
            await async_wait_until(lambda: len(up.requests) == 1)
            draining = asyncio.create_task(s.drain())
            try:
                r = await c.get(f"{admin}/readyz")
                assert (r.status_code, r.json()) == (503, {"status": "draining"})
                assert (await c.get(f"{admin}/healthz")).status_code == 200
            finally:
                release.set()
            resp = await asyncio.wait_for(call, 10)
            assert (resp.status_code, resp.text) == (200, "done")
            assert resp.headers["connection"] == "close"
            await asyncio.wait_for(draining, 10)
        with pytest.raises(httpx.ConnectError):
            await c.get(f"{admin}/healthz")  # the admin port goes down last, but it goes


async def test_metrics_count_real_calls_by_route_and_code() -> None:
    """`/metrics` tells an operator how many calls each upstream answered, how, and how fast."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=404 if request.path == "/missing" else 200, text="x")

    config = {
        "upstreams": {
            "up": {"url": "http://127.0.0.1:9"},  # placeholder, replaced below
            "down": {"url": "http://127.0.0.1:1", "connect_timeout": "2s"},
        }
    }
    async with FakeUpstream(answer) as up:
        config["upstreams"]["up"]["url"] = up.url
        async with running_sidecar(config) as s, httpx.AsyncClient() as c:
            base = f"http://127.0.0.1:{s.http_port}"
            for _ in range(3):
                assert (await c.get(f"{base}/up/ok")).status_code == 200
            assert (await c.get(f"{base}/up/missing")).status_code == 404
            r = await c.get(f"{base}/down/x")
            assert (r.status_code, r.headers["x-sidecar-error"]) == (502, "upstream_connect")
            r = await c.get(f"http://127.0.0.1:{s.admin_port}/metrics")
    assert r.status_code == 200
    # the text format every Prometheus version scrapes
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = r.text
    req = "sidecar_requests_total"
    labels = {"listener": "http", "upstream": "up", "route": "up"}
    assert metric(text, req, **labels, code="200") == 3
    assert metric(text, req, **labels, code="404") == 1
    assert metric(text, req, listener="http", upstream="down", route="down", code="502") == 1
    assert metric(text, "sidecar_errors_total", upstream="down", reason="upstream_connect") == 1
    hist = "sidecar_request_duration_seconds"
    assert metric(text, f"{hist}_count", **labels) == 4
    assert metric(text, f"{hist}_bucket", **labels, le="+Inf") == 4
    assert 0 < (metric(text, f"{hist}_sum", **labels) or 0) < 10
    assert metric(text, "sidecar_requests_in_flight", listener="http", upstream="up") == 0
    assert metric(text, "sidecar_upstream_connections", upstream="up", state="idle") == 1
    assert metric(text, "sidecar_upstream_connections", upstream="up", state="busy") == 0
    fams = families(text)
    assert fams["sidecar_requests"].type == "counter"
    assert fams[hist].type == "histogram"
    assert fams["sidecar_requests_in_flight"].type == "gauge"
    assert metric(text, "sidecar_build_info") == 1
    # process metrics come with every scrape
    assert (metric(text, "process_resident_memory_bytes") or 0) > 0
    assert metric(text, "process_cpu_seconds_total") is not None
    assert (metric(text, "process_open_fds") or 0) > 0


async def test_metrics_show_in_flight_calls_and_busy_upstream_connections() -> None:
    """While calls are in progress, the gauges show them (a stuck upstream is visible)."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    async with (
        FakeUpstream(slow) as up,
        running_sidecar({"upstreams": {"up": {"url": up.url}}}) as s,
    ):
        async with httpx.AsyncClient() as c:
            calls = [
                asyncio.create_task(c.get(f"http://127.0.0.1:{s.http_port}/up/{i}"))
                for i in range(2)
            ]
            await async_wait_until(lambda: len(up.requests) == 2)
            text = (await c.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
            release.set()
            await asyncio.gather(*calls)
            after = (await c.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
    assert metric(text, "sidecar_requests_in_flight", upstream="up") == 2
    assert metric(text, "sidecar_upstream_connections", upstream="up", state="busy") == 2
    assert metric(after, "sidecar_requests_in_flight", upstream="up") == 0
    assert metric(after, "sidecar_upstream_connections", upstream="up", state="busy") == 0
    assert metric(after, "sidecar_upstream_connections", upstream="up", state="idle") == 2


async def test_upstreams_lists_adapter_url_timeout_and_pool_state() -> None:
    """`/upstreams` shows where each upstream is and how its connection pool is doing."""
    async with FakeUpstream() as up:
        config = {"upstreams": {"up": {"url": up.url, "timeout": "3s"}}}
        async with running_sidecar(config) as s, httpx.AsyncClient() as c:
            await c.get(f"http://127.0.0.1:{s.http_port}/up/x")
            r = await c.get(f"http://127.0.0.1:{s.admin_port}/upstreams")
    assert r.status_code == 200
    info = r.json()["up"]
    assert (info["adapter"], info["url"], info["timeout_s"]) == ("http", up.url, 3.0)
    assert info["connections"]["idle"] == 1 and info["connections"]["busy"] == 0
    assert info["connections"]["max"] >= 1
    assert info["connections_opened"] == 1


SECRET = "zQ7-very-distinctive-secret-41b9"


async def test_secret_reaches_the_upstream_but_no_admin_page_log_or_error_body() -> None:
    """A credential given by reference is injected, and shown nowhere but to the upstream."""

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/fail":
            return web.Response(status=500, text="upstream failed")
        return web.Response(text="ok")

    async with FakeUpstream(answer) as up:
        config = {
            # the stop drains at once: the wait for the app to go quiet (test_pod_lifecycle's)
            # logs only how long it waited, and would add its 2 s default here
            "shutdown": {"app_quiet_period": "0s"},
            "upstreams": {
                "pay": {
                    "url": up.url,
                    "request_headers": {"authorization": {"env": "PAY_SECRET"}},
                },
                "dead": {
                    "url": "http://127.0.0.1:1",
                    "request_headers": {"x-api-key": {"env": "PAY_SECRET"}},
                },
            },
        }
        with SidecarProcess(config, env={"PAY_SECRET": SECRET}) as p:
            seen: list[str] = []
            async with httpx.AsyncClient() as c:
                r = await c.get(f"{p.http_url}/pay/charge?card=1")
                assert r.status_code == 200
                assert up.requests[-1].headers["Authorization"] == SECRET
                for path in ("/pay/fail", "/dead/x", "/nowhere/x"):
                    r = await c.get(f"{p.http_url}{path}")
                    assert r.status_code >= 400
                    seen.append(r.text + json.dumps(dict(r.headers)))
                for page in ("/config", "/metrics", "/upstreams", "/plugins", "/readyz"):
                    r = await c.get(f"{p.admin_url}{page}")
                    assert r.status_code == 200
                    seen.append(r.text)
                cfg = (await c.get(f"{p.admin_url}/config")).json()
            assert cfg["upstreams"]["pay"]["request_headers"] == {
                "authorization": {"env": "PAY_SECRET"}
            }
            assert p.terminate() == 0
            logs = p.log_path.read_text() + p.stdout_path.read_text()
    assert logs.strip()  # there were log lines to leak into
    assert any(x.get("path") == "/charge" for x in p.log_lines(stdout=True))
    for text in [*seen, logs]:
        assert SECRET not in text


def test_every_metric_family_is_documented() -> None:
    """An operator finds each family `/metrics` exports, with its labels, in docs/operations.md."""
    from pathlib import Path

    from sidecar.telemetry.metrics import Metrics

    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    for family in Metrics().registry.collect():
        if not family.name.startswith("sidecar_"):
            continue
        name = f"{family.name}_total" if family.type == "counter" else family.name
        assert f"`{name}`" in doc, name
        labels = {k for s in family.samples for k in s.labels if k != "le"}
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{name}`"))
        assert all(f"`{label}`" in row for label in labels), (name, labels)
