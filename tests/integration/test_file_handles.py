"""More app connections than file handles: the sidecar caps its listeners, keeps a reserve, and
says so, instead of going silent on every port (the admin port and reloads included)."""

from __future__ import annotations

import signal
import socket
import time
from typing import Any

import httpx
import yaml

from sidecar.testing import SidecarProcess

EPHEMERAL = {
    "admin": {"address": "127.0.0.1:0"},
    "http": {"address": "127.0.0.1:0"},
    "grpc": {"address": "127.0.0.1:0"},
}


#: SIGTERM drains at once: these tests stop the sidecar cleanly, not after the wait for the app to
#: go quiet (test_pod_lifecycle's), which would add its 2 s default to every stop
NO_QUIET_WAIT = {"shutdown": {"app_quiet_period": "0s"}}


def echo_config(version: str) -> dict[str, Any]:
    return {
        **NO_QUIET_WAIT,
        "upstreams": {"echo": {"adapter": "echo", "request_headers": {"x-config": version}}},
    }


def metric(p: SidecarProcess, name: str, labels: str) -> float:
    text = httpx.get(f"{p.admin_url}/metrics", timeout=5).text
    prefix = f"{name}{{{labels}}} "
    found = [line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)]
    return float(found[0]) if found else 0.0


def wait_for(predicate: Any, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"not within {limit}s"
        time.sleep(0.05)


def test_a_connection_flood_past_the_handle_limit_leaves_admin_and_reload_working() -> None:
    """256 handles, 400 app connections: the cap refuses the excess, the rest keeps working."""
    # the cap with 256 handles and two data listeners: (256 - 64) // 2 // 2 = 48 each
    cap = 48
    with SidecarProcess(echo_config("v1"), prefix=("prlimit", "--nofile=256:256")) as p:
        flood: list[socket.socket] = []
        try:
            for _ in range(400):
                flood.append(socket.create_connection(("127.0.0.1", p.http_port), timeout=5))
            wait_for(
                lambda: (
                    metric(p, "sidecar_connections_refused_total", 'listener="http",reason="limit"')
                    >= 400 - cap
                )
            )
            assert metric(p, "sidecar_downstream_connections", 'listener="http"') == cap
            # the reserve: the admin port answers and a reload reads its file
            assert httpx.get(f"{p.admin_url}/readyz", timeout=5).status_code == 200
            p.config_path.write_text(yaml.safe_dump({**EPHEMERAL, **echo_config("v2")}))
            p.send(signal.SIGHUP)
            wait_for(lambda: metric(p, "sidecar_config_reloads_total", 'result="ok"') == 1.0)
        finally:
            for s in flood:
                s.close()
        # the flood gone, the app's calls get through again, on the reloaded config
        wait_for(lambda: metric(p, "sidecar_downstream_connections", 'listener="http"') == 0)
        r = httpx.get(f"{p.http_url}/echo/", timeout=5)
        assert r.status_code == 200 and r.json()["headers"]["x-config"] == "v2"
        assert p.terminate() == 0
    said = [x for x in p.log_lines() if x.get("msg", "").startswith("connection limit reached")]
    assert len(said) == 1  # once per episode, not once per refused connection
    assert (said[0]["listener"], said[0]["max_connections"]) == ("http", cap)


def test_the_soft_limit_is_raised_at_start_and_logged() -> None:
    """A 1024 soft limit under a higher hard one is a shell default: the sidecar lifts it."""
    with SidecarProcess(echo_config("v1"), prefix=("prlimit", "--nofile=1024:4096")) as p:
        limits = open(f"/proc/{p.proc.pid}/limits").read()  # type: ignore[union-attr]
        assert p.terminate() == 0
    line = next(x for x in p.log_lines() if x.get("msg") == "open files limit raised")
    assert (line["from"], line["to"], line["reserved"]) == (1024, 4096, 256)
    files = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert files.split()[3:5] == ["4096", "4096"]


def test_an_explicit_max_connections_is_obeyed() -> None:
    """`http.max_connections` caps the listener whatever the limit."""
    config = {**echo_config("v1"), "http": {"address": "127.0.0.1:0", "max_connections": 5}}
    with SidecarProcess(config) as p:
        held = [socket.create_connection(("127.0.0.1", p.http_port)) for _ in range(5)]
        try:
            wait_for(lambda: metric(p, "sidecar_downstream_connections", 'listener="http"') == 5)
            with socket.create_connection(("127.0.0.1", p.http_port), timeout=5) as extra:
                try:
                    extra.sendall(b"GET /echo/ HTTP/1.1\r\nHost: a\r\n\r\n")
                    answer = extra.recv(100)
                except ConnectionResetError:  # aborted before or while the request went out
                    answer = b""
                assert answer == b""  # closed at once, nothing answered
        finally:
            for s in held:
                s.close()
        r = httpx.get(f"{p.http_url}/echo/", timeout=5)
        assert r.status_code == 200
        assert p.terminate() == 0


def test_the_grpc_port_caps_its_connections_too() -> None:
    """`grpc.max_connections` (the h2 server) refuses connections past it and counts them."""
    config = {**echo_config("v1"), "grpc": {"address": "127.0.0.1:0", "max_connections": 3}}
    with SidecarProcess(config) as p:
        held = [socket.create_connection(("127.0.0.1", p.grpc_port)) for _ in range(5)]
        try:
            wait_for(
                lambda: (
                    metric(p, "sidecar_connections_refused_total", 'listener="grpc",reason="limit"')
                    == 2
                )
            )
        finally:
            for s in held:
                s.close()
        assert p.terminate() == 0
    said = [x for x in p.log_lines() if x.get("msg", "").startswith("connection limit reached")]
    assert [(x["listener"], x["max_connections"]) for x in said] == [("grpc", 3)]
