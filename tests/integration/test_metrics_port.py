"""The optional metrics port (`admin.metrics_address`): probes and metrics, nothing else."""

from __future__ import annotations

import socket

import httpx
import pytest

from sidecar.errors import PluginError
from sidecar.testing import running_sidecar

from .prometheus_server import free_port


async def test_serves_metrics_and_probes_but_not_the_admin_routes() -> None:
    """Prometheus and kubelet probes reach it; the topology and config stay on loopback."""
    port = free_port()
    config = {
        "admin": {"address": "127.0.0.1:0", "metrics_address": f"127.0.0.1:{port}"},
        "upstreams": {"echo": {"adapter": "echo"}},
    }
    async with running_sidecar(config) as sidecar:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as c:
            assert (await c.get(f"http://127.0.0.1:{sidecar.http_port}/echo/x")).status_code == 200
            metrics = await c.get(f"{base}/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert 'sidecar_requests_total{code="200",listener="http",route="echo"' in metrics.text
            assert (await c.get(f"{base}/healthz")).json() == {"status": "ok"}
            assert (await c.get(f"{base}/readyz")).json() == {"status": "ready"}
            for path in ("/config", "/upstreams", "/plugins", "/dashboard", "/"):
                assert (await c.get(f"{base}{path}")).status_code == 404, path
            assert (await c.post(f"{base}/metrics")).status_code == 405
            # the admin port keeps everything
            admin = f"http://127.0.0.1:{sidecar.admin_port}"
            assert (await c.get(f"{admin}/config")).status_code == 200


async def test_a_taken_metrics_port_stops_start_up_naming_it() -> None:
    """A port clash is a clear start-up failure, not a sidecar silently without metrics."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = {"admin": {"address": "127.0.0.1:0", "metrics_address": address}}
        with pytest.raises(PluginError, match=rf"cannot listen on {address} \(metrics\)"):
            async with running_sidecar(config):
                pass
