"""A real Prometheus scrapes the sidecar and reads back what the calls did."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from sidecar.testing import FakeUpstream, running_sidecar

from .prometheus_server import PrometheusServer, free_port

#: Prometheus takes its first samples 2–6 s after start; it scrapes every 1 s.
QUERY_TIMEOUT = 30.0


async def poll(
    prom: PrometheusServer, promql: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Query until ``done(result)`` or :data:`QUERY_TIMEOUT`; the last result either way."""
    deadline = time.monotonic() + QUERY_TIMEOUT
    while True:
        result = await asyncio.to_thread(prom.query, promql)
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.25)


def values(result: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in result]


async def test_prometheus_scrapes_the_admin_port_and_the_metrics_port() -> None:
    """An operator's Prometheus reads the sidecar's counters, through either port."""
    metrics_port = free_port()
    config = {
        "admin": {
            "address": "127.0.0.1:0",
            "metrics_address": f"127.0.0.1:{metrics_port}",
        },
        "upstreams": {},
    }
    async with FakeUpstream() as up:
        config["upstreams"] = {"orders": {"url": up.url}}
        async with running_sidecar(config) as sidecar:
            jobs = {
                "sidecar": [f"127.0.0.1:{sidecar.admin_port}"],
                "sidecar-metrics-port": [f"127.0.0.1:{metrics_port}"],
            }
            prom = PrometheusServer(jobs)
            # started and stopped off the event loop, which keeps serving the sidecar meanwhile
            await asyncio.to_thread(prom.start)
            try:
                async with httpx.AsyncClient() as c:
                    for i in range(7):
                        r = await c.get(f"http://127.0.0.1:{sidecar.http_port}/orders/{i}")
                        assert r.status_code == 200
                for job in jobs:
                    promql = f'sidecar_requests_total{{job="{job}",upstream="orders",code="200"}}'
                    result = await poll(prom, promql, lambda r: values(r) == [7.0])
                    assert values(result) == [7.0], (job, result, prom.log_path.read_text())
                    labels = result[0]["metric"]
                    assert (labels["listener"], labels["route"]) == ("http", "orders")
                up_result = await poll(prom, "up", lambda r: len(r) == 2)
                assert sorted(values(up_result)) == [1.0, 1.0], up_result
                # the process families come through too
                cpu = await poll(
                    prom, 'process_cpu_seconds_total{job="sidecar"}', lambda r: bool(r)
                )
                assert values(cpu) and values(cpu)[0] > 0
            finally:
                await asyncio.to_thread(prom.stop)
