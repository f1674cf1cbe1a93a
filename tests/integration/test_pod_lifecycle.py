"""Pod termination, process pair: a `sidecar run` process and an app process.

In the classic Kubernetes layout the app and the sidecar get SIGTERM at the same moment. The app
may still call out while it drains, so the sidecar turns peers away at once (its inbound mTLS
listener) but keeps the app's egress open until the app has gone quiet
(`shutdown.app_quiet_period`, 2 s by default), then drains and exits 0. As a native sidecar,
Kubernetes stops the app first: the sidecar then finds it quiet and is done in about the quiet
period. Either way `shutdown.drain_timeout` bounds the whole shutdown.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sidecar.testing import FakeUpstream, SidecarProcess, async_wait_until

from .grpc_upstream import SERVICE, EchoUpstream
from .mtls_pki import Pki, Workload, client_context
from .raw_http import RawConnection, get

REPO = Path(__file__).resolve().parents[2]
QUIET = 2.0  # shutdown.app_quiet_period's default: the tests rely on it
APP_CALLS_FOR = 3.0  # seconds the app keeps calling out after SIGTERM
PAYMENTS = "spiffe://cluster.local/ns/pay/sa/payments"
WEB = "spiffe://cluster.local/ns/shop/sa/web"


class AppProcess:
    """tests/integration/lifecycle_app.py as a child process; its calls are JSON lines."""

    def __init__(self, directory: Path, http_url: str, grpc_target: str) -> None:
        self.out = directory / "app-calls.jsonl"
        self.log = directory / "app-stderr.log"
        self.args = [
            sys.executable,
            "-m",
            "tests.integration.lifecycle_app",
            f"--http={http_url}",
            f"--grpc={grpc_target}",
            f"--out={self.out}",
            f"--after={APP_CALLS_FOR}",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> AppProcess:
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=err, stderr=err)
        try:
            await async_wait_until(lambda: self.has("ready") or self.proc.poll() is not None, 15)  # type: ignore[union-attr]
        except TimeoutError:
            raise AssertionError(f"the app never got ready:\n{self.log.read_text()}") from None
        assert self.has("ready"), f"the app exited early:\n{self.log.read_text()}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def lines(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(x) for x in self.out.read_text().splitlines() if x.endswith("}")]

    def has(self, kind: str) -> bool:
        return any(x["kind"] == kind for x in self.lines())

    def calls(self) -> list[dict[str, Any]]:
        return [x for x in self.lines() if "status" in x]

    def at(self, kind: str) -> float:
        (line,) = [x for x in self.lines() if x["kind"] == kind]
        return float(line["start"])


async def exit_time(proc: subprocess.Popen[bytes], limit: float) -> tuple[int, float]:
    """The exit status, and the wall-clock time the process was seen gone."""
    rc = await asyncio.to_thread(proc.wait, limit)
    return rc, time.time()


async def refused_at(port: int, limit: float) -> float:
    """Wall-clock time from which a new TCP connection to ``port`` is refused."""
    async with asyncio.timeout(limit):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except ConnectionRefusedError:
                return time.time()
            writer.close()
            await asyncio.sleep(0.01)  # poll again: the listener is still open


async def went_503(admin_url: str, limit: float = 5.0) -> bool:
    """Poll /readyz until it answers 503."""
    async with httpx.AsyncClient() as c:
        try:
            async with asyncio.timeout(limit):
                while (await c.get(f"{admin_url}/readyz", timeout=1)).status_code != 503:
                    await asyncio.sleep(0.01)
        except (TimeoutError, httpx.TransportError):
            return False
    return True


def logged_at(line: dict[str, Any]) -> float:
    """A sidecar log line's ``ts`` (UTC, milliseconds) as wall-clock seconds."""
    when = datetime.strptime(line["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return when.timestamp()


def messages(lines: list[dict[str, Any]]) -> list[str]:
    return [str(x.get("msg")) for x in lines]


@pytest.fixture
def workloads(tmp_path: Path) -> tuple[Workload, Workload, str]:
    """The sidecar's own certificate, a peer's, and the CA that signed both."""
    pki = Pki(tmp_path / "mesh")
    return pki.workload("payments", PAYMENTS, ip=True), pki.workload("web", WEB), pki.ca


async def test_classic_layout_the_app_loses_no_call_and_the_sidecar_exits_once_it_is_quiet(
    tmp_path: Path, workloads: tuple[Workload, Workload, str]
) -> None:
    """SIGTERM to app and sidecar at once: the app's last calls all succeed, peers are turned
    away at once, and the sidecar exits 0 soon after the app went quiet, not at the grace."""
    own, peer, ca = workloads
    grace = 20.0
    async with (
        FakeUpstream() as up,
        EchoUpstream() as grpc_up,
        FakeUpstream() as app_server,
    ):
        config = {
            "shutdown": {"drain_timeout": f"{grace}s"},  # app_quiet_period: the default
            "upstreams": {
                "up": {"url": up.url},
                "echo": {"adapter": "grpc", "url": grpc_up.url, "services": [SERVICE]},
            },
            "inbound": {
                "address": "127.0.0.1:0",
                "app": f"127.0.0.1:{app_server.port}",
                "tls": own.tls(),
                "allow": [WEB],
            },
        }
        with SidecarProcess(config) as p:
            peer_tls = client_context(ca, peer)
            async with httpx.AsyncClient(verify=peer_tls, timeout=10) as c:
                r = await c.get(f"https://127.0.0.1:{p.inbound_port}/hello")
            assert r.status_code == 200  # the inbound listener works before the signal
            async with AppProcess(tmp_path, f"{p.http_url}/up", p.grpc_target) as app:
                assert app.proc is not None and p.proc is not None
                signalled = time.time()
                p.send(signal.SIGTERM)
                app.proc.send_signal(signal.SIGTERM)
                peers_refused = await refused_at(p.inbound_port, limit=3)
                not_ready = await went_503(p.admin_url)
                (app_rc, app_gone), (rc, sidecar_gone) = await asyncio.gather(
                    exit_time(app.proc, APP_CALLS_FOR + 10), exit_time(p.proc, grace + 5)
                )
                calls = app.calls()
                app_signalled = app.at("signal")
            logs = p.log_lines()
    assert (app_rc, rc) == (0, 0), app.log.read_text()
    # the app lost no call: every one was answered by the upstream (HTTP "ok", gRPC its echo)
    failed = [c for c in calls if c["status"] != 200 or c["body"] not in ("ok", "app")]
    assert failed == [], [(c["kind"], c.get("error"), c["start"] - signalled) for c in failed[:5]]
    http_calls = [c for c in calls if c["kind"] != "grpc"]
    assert len(up.requests) == len(http_calls)
    assert len(grpc_up.calls) == len(calls) - len(http_calls)
    # ... and it kept calling for its 3 s after the signal, on every kind of connection
    after = [c for c in calls if c["start"] >= app_signalled]
    assert {c["kind"] for c in after} == {"keep-alive", "new-connection", "grpc"}
    last_call = max(c["end"] for c in after)
    assert last_call - signalled >= APP_CALLS_FOR - 0.5  # its last round began before 3 s
    assert len(after) >= 30
    # peers were turned away at once, while the app's egress was still serving it
    assert peers_refused - signalled < 1.0
    assert peers_refused < last_call - 1.0
    assert not_ready
    # each HTTP call answered once the wait began ended its connection (Connection: close)
    waiting = [x for x in logs if x.get("msg") == "waiting for the app to go quiet"][0]
    held = [c for c in http_calls if c["start"] > logged_at(waiting) + 0.005]  # ts: ms
    assert held and all(c["connection"] == "close" for c in held)
    # the sidecar waited for the app's quiet period after its last call, and no longer
    assert app_gone <= sidecar_gone
    assert sidecar_gone >= last_call + QUIET - 0.1
    assert sidecar_gone - last_call < QUIET + 2.0
    assert sidecar_gone - signalled < grace / 2
    msgs = messages(logs)
    assert msgs.index("waiting for the app to go quiet") < msgs.index("app quiet")
    assert "grace ended" not in msgs and "drain timeout: connections cut" not in msgs


async def test_native_sidecar_layout_no_app_connections_exits_in_about_the_quiet_period() -> None:
    """With a native sidecar the app is gone before SIGTERM reaches the sidecar: it finds the
    app quiet and is done in about app_quiet_period, far from the grace."""
    async with FakeUpstream() as up:
        config = {"shutdown": {"drain_timeout": "20s"}, "upstreams": {"up": {"url": up.url}}}
        with SidecarProcess(config) as p:
            async with httpx.AsyncClient() as c:  # the app's calls, before it exited
                assert (await c.get(f"{p.http_url}/up/x")).status_code == 200
            assert p.proc is not None
            sent = time.time()
            p.send(signal.SIGTERM)
            rc, gone = await exit_time(p.proc, 25)
            logs = p.log_lines()
    assert rc == 0
    assert QUIET <= gone - sent < QUIET + 1.5
    (quiet,) = [x for x in logs if x.get("msg") == "app quiet"]
    assert QUIET <= quiet["waited_s"] < QUIET + 0.5
    (waiting,) = [x for x in logs if x.get("msg") == "waiting for the app to go quiet"]
    assert (waiting["connections"], waiting["in_flight"]) == (0, 0)


async def test_an_idle_keep_alive_pool_does_not_hold_the_sidecar_until_the_grace() -> None:
    """An app that stays up with an idle keep-alive connection and calls no more: the sidecar
    still exits in about app_quiet_period, closing that connection."""
    async with FakeUpstream() as up:
        config = {"shutdown": {"drain_timeout": "20s"}, "upstreams": {"up": {"url": up.url}}}
        with SidecarProcess(config) as p:
            async with await RawConnection.open(p.http_port) as idle:
                await idle.send(get("/up/x"))
                first = await idle.response()
                assert first.status == 200 and first.header("connection") is None
                assert p.proc is not None
                sent = time.time()
                p.send(signal.SIGTERM)
                rc, gone = await exit_time(p.proc, 25)
                assert await idle.closed()
            logs = p.log_lines()
    assert rc == 0
    assert QUIET <= gone - sent < QUIET + 1.5
    (waiting,) = [x for x in logs if x.get("msg") == "waiting for the app to go quiet"]
    assert (waiting["connections"], waiting["in_flight"]) == (1, 0)
    assert "app quiet" in messages(logs)


async def test_an_app_that_never_goes_quiet_is_bounded_by_the_drain_timeout() -> None:
    """An app that keeps calling holds the sidecar only until drain_timeout: then the drain
    runs, the process exits 0, and every call before that was answered."""
    grace, quiet = 3.0, 1.0
    calls: list[tuple[float, int | None]] = []

    async def busy_app(url: str) -> None:
        # keep-alive and new connections alike, until the sidecar refuses
        async with httpx.AsyncClient(timeout=10) as c:
            while True:
                started = time.time()
                try:
                    r = await c.get(url)
                except httpx.TransportError:
                    calls.append((started, None))
                    return
                calls.append((started, r.status_code))
                await asyncio.sleep(0.02)  # the app's pace

    async with FakeUpstream() as up:
        config = {
            "shutdown": {"drain_timeout": f"{grace}s", "app_quiet_period": f"{quiet}s"},
            "upstreams": {"up": {"url": up.url}},
        }
        with SidecarProcess(config) as p:
            apps = [asyncio.create_task(busy_app(f"{p.http_url}/up/x")) for _ in range(3)]
            try:
                await async_wait_until(lambda: len(calls) >= 6)
                assert p.proc is not None
                sent = time.time()
                p.send(signal.SIGTERM)
                rc, gone = await exit_time(p.proc, grace + 5)
                await asyncio.wait_for(asyncio.gather(*apps), 10)
            finally:
                for task in apps:
                    task.cancel()
            logs = p.log_lines()
    assert rc == 0
    assert grace <= gone - sent < grace + 1.5  # the grace, plus at most the 1 s unwind
    msgs = messages(logs)
    assert "grace ended" in msgs and "app quiet" not in msgs
    # the app was served all along the grace; only calls at its very end may fail
    before_end = [status for started, status in calls if started < sent + grace - 0.25]
    assert len([s for s in before_end if s == 200]) > 20
    assert all(status == 200 for status in before_end)


async def test_a_sighup_during_the_wait_is_ignored_and_the_drain_still_exits_0() -> None:
    """A reload asked for while shutting down (SIGHUP's default would kill the process and cut
    the app's egress mid-wait) is logged and skipped; the shutdown goes on to exit 0."""
    async with FakeUpstream() as up:
        config = {
            "shutdown": {"drain_timeout": "10s", "app_quiet_period": "1s"},
            "upstreams": {"up": {"url": up.url}},
        }
        with SidecarProcess(config) as p:
            assert p.proc is not None
            p.send(signal.SIGTERM)
            waiting = "waiting for the app to go quiet"
            await async_wait_until(lambda: waiting in messages(p.log_lines()), 5)
            p.send(signal.SIGHUP)
            rc, _ = await exit_time(p.proc, 15)
            logs = p.log_lines()
    assert rc == 0
    msgs = messages(logs)
    assert msgs.index(waiting) < msgs.index("reload skipped") < msgs.index("app quiet")
