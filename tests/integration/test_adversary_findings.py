"""Findings of an adversarial pass over the running product: each test reproduces one hole a
local client could use, and fails until it is fixed."""

from __future__ import annotations

import socket

import httpx

from sidecar.testing import SidecarProcess

ECHO = {"upstreams": {"echo": {"adapter": "echo"}}}


def test_idle_connections_to_the_admin_port_do_not_starve_readyz_and_the_egress() -> None:
    """400 idle connections to the admin port under 256 handles: /readyz and calls still answer.

    The data listeners are capped from the handle limit, the admin port is not: its idle
    connections take every handle, so /readyz (the kubelet probe), reloads and every app call
    go silent, and nothing is logged or counted. The same holds for admin.metrics_address,
    which may bind the pod address.
    """
    with SidecarProcess(ECHO, prefix=("prlimit", "--nofile=256:256")) as p:
        flood: list[socket.socket] = []
        try:
            for _ in range(400):
                flood.append(socket.create_connection(("127.0.0.1", p.admin_port), timeout=5))
            readyz = httpx.get(f"{p.admin_url}/readyz", timeout=3)
            assert readyz.status_code == 200
            call = httpx.get(f"{p.http_url}/echo/x", timeout=3)
            assert call.status_code == 200
        finally:
            for s in flood:
                s.close()
