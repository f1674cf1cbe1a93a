"""Idle connections to the admin or metrics port cannot use up the process's file handles.

Both ports keep a few dozen connections and close the oldest idle one to make room, so a probe,
a scrape or an operator's curl gets through a flood of idle connections, and the data listeners
and reloads keep their handles (found by an adversarial pass: without the cap, 400 idle admin
connections under 256 handles silenced /readyz and every app call, with nothing logged).
"""

from __future__ import annotations

import socket

import httpx
import pytest

from sidecar.testing import SidecarProcess

#: ``shutdown``: SIGTERM drains at once; the wait for the app to go quiet is test_pod_lifecycle's,
#: and would add its 2 s default to the stop here
ECHO = {"shutdown": {"app_quiet_period": "0s"}, "upstreams": {"echo": {"adapter": "echo"}}}


def metric(p: SidecarProcess, labels: str) -> float:
    text = httpx.get(f"{p.admin_url}/metrics", timeout=5).text
    prefix = f"sidecar_connections_refused_total{{{labels}}} "
    found = [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]
    return float(found[0]) if found else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("port", ["admin", "metrics"])
def test_idle_connections_to_a_control_port_do_not_starve_probes_and_the_egress(
    port: str,
) -> None:
    """400 idle connections under 256 handles: /readyz, /metrics and app calls still answer."""
    metrics_port = free_port()
    config = {
        **ECHO,
        "admin": {"address": "127.0.0.1:0", "metrics_address": f"127.0.0.1:{metrics_port}"},
    }
    with SidecarProcess(config, prefix=("prlimit", "--nofile=256:256")) as p:
        target = p.admin_port if port == "admin" else metrics_port
        flood: list[socket.socket] = []
        try:
            for _ in range(400):
                flood.append(socket.create_connection(("127.0.0.1", target), timeout=5))
            for url in (p.admin_url, f"http://127.0.0.1:{metrics_port}"):
                assert httpx.get(f"{url}/readyz", timeout=3).status_code == 200
            assert httpx.get(f"{p.http_url}/echo/x", timeout=3).status_code == 200
            assert metric(p, f'listener="{port}",reason="evicted"') >= 400 - 64
        finally:
            for s in flood:
                s.close()
        assert p.terminate() == 0
