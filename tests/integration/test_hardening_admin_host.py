"""The admin and metrics ports refuse a DNS-rebinding page's Host and still answer their clients.

A page at `http://evil.example:15000/` whose name was rebound to 127.0.0.1 reaches the admin
port with `Host: evil.example:15000`; it must get 421, never `/config`. Kubelet probes and
Prometheus scrapes name the pod by its IP (`Host: 10.1.2.3:15030`) and must still be answered.
Every request here goes to 127.0.0.1; only the Host header varies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from sidecar.testing import running_sidecar

from .prometheus_server import free_port

EVIL = "evil.example"


@pytest.fixture
def warnings() -> Iterator[list[logging.LogRecord]]:
    """Warnings the sidecar's logger emits in this process."""
    got: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = got.append  # type: ignore[method-assign]
    logger = logging.getLogger("sidecar")
    logger.addHandler(handler)
    yield got
    logger.removeHandler(handler)


def misdirected(metrics: str, port: str) -> float:
    """The value of sidecar_admin_misdirected_total{port=...} in an exposition."""
    for line in metrics.splitlines():
        if line.startswith(f'sidecar_admin_misdirected_total{{port="{port}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_the_admin_port_refuses_a_rebinding_host_and_answers_loopback_ones(
    warnings: list[logging.LogRecord],
) -> None:
    """/config, /upstreams and /dashboard answer 127.0.0.1, localhost and [::1] only."""
    async with running_sidecar({"upstreams": {"echo": {"adapter": "echo"}}}) as sidecar:
        port = sidecar.admin_port
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as c:
            for path in ("/config", "/upstreams", "/dashboard", "/metrics"):
                r = await c.get(f"{base}{path}", headers={"host": f"{EVIL}:{port}"})
                assert r.status_code == 421, (path, r.text)
                assert r.headers["x-sidecar-error"] == "misdirected_request"
                assert "127.0.0.1, localhost, [::1]" in r.text
                assert "upstreams" not in r.text  # nothing of the config leaks
            for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", f"[::1]:{port}"):
                r = await c.get(f"{base}/config", headers={"host": host})
                assert r.status_code == 200, host
            for host in (EVIL, "10.1.2.3:15000", "localhost.evil.example"):
                r = await c.get(f"{base}/healthz", headers={"host": host})
                assert r.status_code == 421, host
            metrics = (await c.get(f"{base}/metrics")).text
    assert misdirected(metrics, "admin") == 7
    refusals = [w for w in warnings if "Host names another site" in w.getMessage()]
    assert len(refusals) == 1  # logged once; the rest only counted


async def test_the_metrics_port_answers_pod_ip_probes_and_refuses_dns_names() -> None:
    """Kubelet probes and Prometheus (Host = pod IP:port) work; a rebinding name gets 421."""
    port = free_port()
    config = {
        "admin": {"address": "127.0.0.1:0", "metrics_address": f"127.0.0.1:{port}"},
        "upstreams": {"echo": {"adapter": "echo"}},
    }
    async with running_sidecar(config) as sidecar:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as c:
            for host in (f"10.1.2.3:{port}", f"[fd00::7]:{port}", f"127.0.0.1:{port}", "localhost"):
                for path in ("/healthz", "/readyz", "/metrics"):
                    r = await c.get(f"{base}{path}", headers={"host": host})
                    assert r.status_code == 200, (host, path, r.text)
            for host in (f"{EVIL}:{port}", "prometheus.monitoring.svc:9090"):
                r = await c.get(f"{base}/metrics", headers={"host": host})
                assert r.status_code == 421, host
                assert "IP address" in r.text
            admin = await c.get(f"http://127.0.0.1:{sidecar.admin_port}/metrics")
    assert misdirected(admin.text, "metrics") == 2
