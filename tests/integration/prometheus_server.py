"""A real Prometheus server for tests: private config and TSDB directory, 127.0.0.1, a free port.

``with PrometheusServer({"sidecar": ["127.0.0.1:15000"]}) as prom: prom.query("up")``. It scrapes
each job's targets every second (``/metrics``), is started as this process's child and stopped by
its PID. A Prometheus that cannot start (missing binary, bad config, not ready in time) raises:
the test that needs it fails, it is never skipped. ``scripts/setup --test`` installs it
(Debian's ``prometheus`` package: ``/usr/bin/prometheus``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

BINARY = "/usr/bin/prometheus"
#: how long Prometheus gets to answer ``/-/ready`` (it takes ~0.2 s here).
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrometheusServer:
    """``jobs``: job name → ``host:port`` targets, each scraped every ``interval``."""

    def __init__(self, jobs: Mapping[str, Sequence[str]], *, interval: str = "1s") -> None:
        self.jobs = {name: list(targets) for name, targets in jobs.items()}
        self.interval = interval
        self.dir = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
        self.log_path = self.dir / "prometheus.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        binary = shutil.which(BINARY) or shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(f"no Prometheus at {BINARY}: run scripts/setup --test")
        config = {
            "global": {"scrape_interval": self.interval, "scrape_timeout": self.interval},
            "scrape_configs": [
                {"job_name": name, "static_configs": [{"targets": targets}]}
                for name, targets in self.jobs.items()
            ],
        }
        config_path = self.dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        cmd = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own arguments
                cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self.proc.returncode}:\n{self.log_path.read_text()}"
                )
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(
            f"prometheus not ready in {READY_TIMEOUT}s:\n{self.log_path.read_text()}"
        )

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:  # noqa: S310
                return bool(r.status == 200)
        except OSError:  # refused while starting, 503 while it loads
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` evaluates to now (``/api/v1/query``)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - our own server
            answer = json.loads(r.read())
        if answer.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it does not exit in time; the temp dir goes too."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
