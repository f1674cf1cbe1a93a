"""The container image, built by ``scripts/build-image`` and run with podman as a pod would run it.

Every container runs with a read-only root filesystem and a tmpfs on /tmp, with a config
mounted at /etc/sidecar (as a ConfigMap would be) or the image's own.

- The probe container has its own network namespace (podman's bridge): its metrics port binds
  0.0.0.0 inside and is published on 127.0.0.1 of the host, the way kubelet reaches a pod
  address. The app's side of it (egress on 127.0.0.1 inside) is reached with ``podman exec``,
  which joins the container's namespace as an app container in the same pod would.
- The proxy containers share the host's network namespace (``--network host``, as a pod shares
  one between its containers): their ports are on 127.0.0.1 and the upstream, an aiohttp server
  in the test, too, so every call stays on loopback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .host_upstream import HostUpstream
from .image_build import BUILD, VERSION
from .podman_cli import Podman

#: The config's drain grace (seconds): SIGTERM must stop the container well within it.
DRAIN = 10.0
#: Bound (seconds) on a container becoming ready.
READY = 30.0

# the build alone takes minutes on a machine that has never built the image
pytestmark = pytest.mark.timeout(BUILD + 120)

#: Run inside the container: one GET, its outcome as JSON on stdout (an HTTP error included).
CLIENT = """
import json, sys, urllib.error, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))
except urllib.error.HTTPError as e:
    r = e
print(json.dumps({"status": r.status, "headers": dict(r.headers), "body": r.read().decode()}))
"""

#: Run inside the container: bytecode the venv and the modules `sidecar run` imports would
#: otherwise compile at each start, and whether the default config is the embedded one.
INSPECT = """
import importlib.resources, importlib.util, json, os, sys, sysconfig
import sidecar.app, sidecar.cli, sidecar.lifecycle, uvloop
venv = sysconfig.get_path("purelib")
no_pyc, timestamped = [], []
for d, _, files in os.walk(venv):
    for f in files:
        if f.endswith(".py"):
            pyc = importlib.util.cache_from_source(os.path.join(d, f))
            if not os.path.exists(pyc):
                no_pyc.append(os.path.join(d, f))
            elif int.from_bytes(open(pyc, "rb").read(8)[4:], "little") != 1:
                timestamped.append(pyc)
for m in list(sys.modules.values()):
    src = getattr(m, "__file__", None) or ""
    if src.endswith(".py") and not os.path.exists(importlib.util.cache_from_source(src)):
        no_pyc.append(src)
default = (importlib.resources.files("sidecar") / "default.yaml").read_bytes()
print(json.dumps({
    "no_pyc": no_pyc, "timestamped": timestamped,
    "default_config": open("/etc/sidecar/sidecar.yaml", "rb").read() == default,
    "pip": importlib.util.find_spec("pip") is not None,
    "tmp": os.listdir("/tmp"),
}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    name: str
    metrics_url: str


def run_sidecar(
    podman: Podman, image: str, role: str, config: dict[str, Any] | None, *, host_net: bool = False
) -> str:
    """Start a read-only container; ``config`` mounted at /etc/sidecar, or the image's own.

    With ``host_net`` it shares the host's network namespace (its ports are the config's, on
    127.0.0.1); otherwise, with a config, its metrics port (``admin.metrics_address``, on
    0.0.0.0 inside) is published on the same port of the host's 127.0.0.1.
    """
    name = f"sidecar-image-test-{os.getpid()}-{role}"
    options = ["--read-only", "--tmpfs", "/tmp"]
    if config is not None:
        conf_dir = podman.conf.parent / role
        conf_dir.mkdir(mode=0o755)  # readable by the container's user, which is not root
        (conf_dir / "sidecar.yaml").write_text(yaml.safe_dump(config))
        (conf_dir / "sidecar.yaml").chmod(0o644)
        options += ["--volume", f"{conf_dir}:/etc/sidecar:ro"]
        if host_net:
            options += ["--network", "host"]
        else:
            port = config["admin"]["metrics_address"].rsplit(":", 1)[1]
            options += ["--publish", f"127.0.0.1:{port}:{port}"]
    podman.run_detached(name, image, *options)
    return name


def wait_ready(podman: Podman, name: str, ready: Callable[[], bool]) -> None:
    """Poll ``ready()``; fail with the container's log if it is not true within ``READY``."""
    deadline = time.monotonic() + READY
    while time.monotonic() < deadline:
        if ready():
            return
        if not podman.inspect(name)["State"]["Running"]:
            break
        time.sleep(0.1)
    pytest.fail(f"{name} not ready within {READY}s:\n{podman.logs(name)[-4000:]}")


def answers_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    return ready


def probe_config(metrics_port: int) -> dict[str, Any]:
    """The probe container's: the metrics port on the container's own address."""
    return {
        "admin": {"metrics_address": f"0.0.0.0:{metrics_port}"},
        "upstreams": {"echo": {"adapter": "echo"}},
    }


def proxy_config(upstream_port: int) -> dict[str, Any]:
    """A host-network container's: every port a free one of the host's 127.0.0.1."""
    return {
        "admin": {"address": f"127.0.0.1:{free_port()}"},
        "http": {"address": f"127.0.0.1:{free_port()}"},
        "grpc": {"address": f"127.0.0.1:{free_port()}"},
        "shutdown": {"drain_timeout": f"{DRAIN}s"},
        "upstreams": {"host": {"url": f"http://127.0.0.1:{upstream_port}", "timeout": "5s"}},
    }


def port_of(config: dict[str, Any], listener: str) -> int:
    return int(config[listener]["address"].rsplit(":", 1)[1])


def call_from_app(podman: Podman, name: str, url: str) -> dict[str, Any]:
    """GET ``url`` from inside the container's network namespace, as the app beside it."""
    done = podman.exec_python(name, CLIENT, url, "20", timeout=30)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def probe(podman: Podman, image: str) -> Iterator[Running]:
    """A bridged container whose metrics port is published on the host's 127.0.0.1."""
    metrics_port = free_port()
    name = run_sidecar(podman, image, "probe", probe_config(metrics_port))
    try:
        url = f"http://127.0.0.1:{metrics_port}"
        wait_ready(podman, name, answers_ready(url))
        yield Running(name, url)
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


@pytest.fixture(scope="module")
def upstream() -> Iterator[HostUpstream]:
    with HostUpstream("127.0.0.1", free_port()) as up:
        yield up


def test_image_metadata_says_how_to_run_it(podman: Podman, image: str) -> None:
    """Orchestrators read the user, entrypoint, ports, stop signal and labels from the image."""
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["sidecar", "run"]
    assert config["Cmd"] == ["-c", "/etc/sidecar/sidecar.yaml"]
    assert config["StopSignal"] == "SIGTERM"
    assert set(config["ExposedPorts"]) >= {"15000/tcp", "15001/tcp", "15002/tcp", "15030/tcp"}
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == "sidecar"
    assert "org.opencontainers.image.source" in labels


def test_readyz_answers_through_the_published_metrics_port(podman: Podman, probe: Running) -> None:
    """Kubelet probes and Prometheus reach /readyz and /metrics on the pod address."""
    r = httpx.get(f"{probe.metrics_url}/readyz", timeout=5)
    assert (r.status_code, r.json()) == (200, {"status": "ready"})
    assert "sidecar_" in httpx.get(f"{probe.metrics_url}/metrics", timeout=5).text
    # the app beside it, in the same network namespace, calls the egress on 127.0.0.1
    echo = call_from_app(podman, probe.name, "http://127.0.0.1:15001/echo/hello")
    assert echo["status"] == 200


def test_app_call_is_proxied_through_the_container_to_an_upstream(
    podman: Podman, image: str, upstream: HostUpstream
) -> None:
    """The app's call to 127.0.0.1:<http>/<upstream>/... reaches an upstream outside the pod."""
    config = proxy_config(upstream.port)
    name = run_sidecar(podman, image, "proxy", config, host_net=True)
    try:
        wait_ready(podman, name, answers_ready(f"http://127.0.0.1:{port_of(config, 'admin')}"))
        r = httpx.get(f"http://127.0.0.1:{port_of(config, 'http')}/host/through?x=1", timeout=10)
        assert (r.status_code, r.text) == (200, "hello from the host")
        path, headers = upstream.requests[-1]
        assert path == "/through?x=1"
        assert headers["X-Forwarded-For"] == "127.0.0.1"
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def test_sidecar_process_is_not_root_and_root_filesystem_is_read_only(
    podman: Podman, probe: Running
) -> None:
    """runAsNonRoot and readOnlyRootFilesystem hold: the process is uid/gid 65532, nothing root."""
    state = podman.inspect(probe.name)
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    status = Path(f"/proc/{state['State']['Pid']}/status").read_text().splitlines()
    ids = {line.split(":")[0]: line.split()[1:] for line in status if line[:4] in ("Uid:", "Gid:")}
    assert ids == {"Uid": ["65532"] * 4, "Gid": ["65532"] * 4}


def test_image_runs_with_no_mount_from_precompiled_bytecode(podman: Podman, image: str) -> None:
    """No ConfigMap: the embedded default answers; nothing is compiled or written at run time."""
    name = run_sidecar(podman, image, "default", None)

    def ready() -> bool:
        done = podman.exec_python(name, CLIENT, "http://127.0.0.1:15000/readyz", "1")
        return done.returncode == 0 and json.loads(done.stdout)["status"] == 200

    try:
        wait_ready(podman, name, ready)
        echo = call_from_app(podman, name, "http://127.0.0.1:15001/echo/hello")
        assert echo["status"] == 200
        assert json.loads(echo["body"])["headers"]["x-sidecar-demo"] == "injected-by-sidecar"
        done = podman.exec_python(name, INSPECT)
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        assert found == {
            "no_pyc": [],
            "timestamped": [],
            "default_config": True,
            "pip": False,
            "tmp": [],
        }
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)


def test_sigterm_lets_the_call_in_flight_finish_and_exits_zero(
    podman: Podman, image: str, upstream: HostUpstream
) -> None:
    """`podman stop` (a rolling update) drains: the app's call in flight succeeds, exit code 0."""
    config = proxy_config(upstream.port)
    name = run_sidecar(podman, image, "stop", config, host_net=True)
    try:
        wait_ready(podman, name, answers_ready(f"http://127.0.0.1:{port_of(config, 'admin')}"))
        seen = len(upstream.requests)
        client = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLIENT,
                f"http://127.0.0.1:{port_of(config, 'http')}/host/slow",
                "20",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 20
            while not any(p == "/slow" for p, _ in upstream.requests[seen:]):
                assert time.monotonic() < deadline, "the slow call never reached the upstream"
                time.sleep(0.01)
            started = time.monotonic()
            podman("stop", "--time", str(int(DRAIN * 3)), name, timeout=DRAIN * 3 + 30)
            took = time.monotonic() - started
            out, err = client.communicate(timeout=30)
        finally:
            client.kill()
        assert client.returncode == 0, err
        result = json.loads(out)
        assert (result["status"], result["body"]) == (200, "slow answer")
        assert took < DRAIN, f"stop took {took:.1f}s, past the {DRAIN}s drain grace"
        assert podman.inspect(name)["State"]["ExitCode"] == 0
        assert '"msg": "draining"' in podman.logs(name)
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
