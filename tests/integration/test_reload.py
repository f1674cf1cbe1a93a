"""Config reload: a valid file swaps routes for new calls, an invalid one is refused and logged,
in-flight calls finish where they started, and secrets never show."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiohttp import web

from sidecar.app import Sidecar
from sidecar.telemetry.logs import JsonFormatter
from sidecar.testing import FakeUpstream, SidecarProcess, async_wait_until, running_sidecar
from tests.integration.host_upstream import HostUpstream

SECRET = "s3cr3t-Tok3n-9f8e7d"  # distinctive: grep-able in any output
EPHEMERAL = {
    "admin": {"address": "127.0.0.1:0"},
    "http": {"address": "127.0.0.1:0"},
    "grpc": {"address": "127.0.0.1:0"},
}


def write(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump({**EPHEMERAL, **config}))


@contextmanager
def captured_log() -> Iterator[list[dict[str, Any]]]:
    """The sidecar's log records as the JSON objects the process would print."""
    lines: list[dict[str, Any]] = []
    formatter = JsonFormatter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(formatter.format(record)))

    handler = Collect(logging.INFO)
    logger = logging.getLogger("sidecar")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def reloads(s: Sidecar, result: str) -> float:
    value = s.metrics.registry.get_sample_value("sidecar_config_reloads_total", {"result": result})
    return value or 0.0


def slow_upstream() -> tuple[FakeUpstream, asyncio.Event]:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="slow done")

    return FakeUpstream(slow), release


@pytest.mark.parametrize("change", ["removed", "moved"])
async def test_in_flight_call_finishes_on_the_old_config_while_new_calls_use_the_new(
    tmp_path: Path, change: str
) -> None:
    """A reload never breaks a call in progress, even one to an upstream the reload removes."""
    slow, release = slow_upstream()
    path = tmp_path / "sidecar.yaml"
    async with slow, FakeUpstream() as other:
        write(path, {"upstreams": {"pay": {"url": slow.url}}})
        async with running_sidecar(path.read_text(), config_path=str(path)) as s:
            base = f"http://127.0.0.1:{s.http_port}"
            async with httpx.AsyncClient(timeout=10) as client:
                in_flight = asyncio.create_task(client.get(f"{base}/pay/order"))
                await async_wait_until(lambda: len(slow.requests) == 1)
                if change == "removed":
                    write(path, {"upstreams": {"other": {"url": other.url}}})
                else:  # same name, a new address
                    write(path, {"upstreams": {"pay": {"url": other.url}}})
                assert await s.reload() is True
                new = await client.get(f"{base}/{'other' if change == 'removed' else 'pay'}/new")
                assert (new.status_code, new.text) == (200, "ok")
                assert other.requests[0].path_qs == "/new"
                if change == "removed":
                    gone = await client.get(f"{base}/pay/order")
                    assert gone.status_code == 404
                    assert gone.headers["x-sidecar-error"] == "no_route"
                assert not in_flight.done()
                release.set()
                old = await asyncio.wait_for(in_flight, 10)
                assert (old.status_code, old.text) == (200, "slow done")
                assert len(slow.requests) == 1
            assert reloads(s, "ok") == 1


async def test_invalid_config_is_refused_logged_and_the_old_one_keeps_serving(
    tmp_path: Path,
) -> None:
    """A typo pushed to a running sidecar changes nothing but a log line and a counter."""
    path = tmp_path / "sidecar.yaml"
    async with FakeUpstream() as up:
        write(path, {"upstreams": {"pay": {"url": up.url}}})
        async with running_sidecar(path.read_text(), config_path=str(path)) as s:
            path.write_text(
                f"upstreams:\n  pay:\n    url: {up.url}\n    timeout: fast\n"
                "routes: [{match: {path_prefix: /x}, upstream: paymnts}]\n"
            )
            with captured_log() as lines:
                assert await s.reload() is False
            refused = [line for line in lines if line["msg"] == "config refused"]
            assert [line["problem"] for line in refused] == [
                f'{path}: upstreams.pay.timeout: expected a duration like "2s", got "fast"',
                f'{path}: routes[0].upstream: no upstream named "paymnts" (did you mean "pay"?)',
            ]
            assert refused[0]["level"] == "error"
            assert (refused[0]["key"], refused[0]["file"]) == ("upstreams.pay.timeout", str(path))
            assert any(line["msg"] == "the old config keeps serving" for line in lines)
            assert reloads(s, "refused") == 1
            assert reloads(s, "ok") == 0
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{s.http_port}/pay/still")
                assert (r.status_code, r.text) == (200, "ok")
                metrics = await client.get(f"http://127.0.0.1:{s.admin_port}/metrics")
            assert 'sidecar_config_reloads_total{result="refused"} 1.0' in metrics.text
            assert s.config.upstreams["pay"].timeout == 15.0


async def test_listener_and_plugin_changes_are_reported_as_needing_a_restart(
    tmp_path: Path,
) -> None:
    """A reload cannot move a port: it says so, keeps the old value, and applies the rest."""
    path = tmp_path / "sidecar.yaml"
    write(path, {"upstreams": {"a": {"adapter": "echo"}}})
    async with running_sidecar(path.read_text(), config_path=str(path)) as s:
        port = s.http_port
        path.write_text(
            yaml.safe_dump(
                {
                    "admin": {"address": "127.0.0.1:0"},
                    "grpc": {"address": "127.0.0.1:0"},
                    "http": {"address": "127.0.0.2:0", "max_headers": 50},
                    "plugins": {"disabled": ["nope"]},
                    "upstreams": {"b": {"adapter": "echo"}},
                }
            )
        )
        with captured_log() as lines:
            assert await s.reload() is True
        [warning] = [line for line in lines if line["level"] == "warning"]
        assert warning["keys"] == ["http.address", "http.max_headers", "plugins.disabled"]
        assert "restart" in warning["msg"]
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/b/")).status_code == 200
            assert (await client.get(f"http://127.0.0.1:{port}/a/")).status_code == 404
            shown = (await client.get(f"http://127.0.0.1:{s.admin_port}/config")).json()
        # /config shows what runs: the old listener, the new upstreams
        assert shown["http"]["address"] == "127.0.0.1:0"
        assert shown["http"]["max_headers"] == 100
        assert shown["plugins"]["disabled"] == []
        assert list(shown["upstreams"]) == ["b"]


async def test_config_endpoint_and_reload_never_show_secret_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/config names secrets by reference, while the upstream gets the values (re-read on
    reload)."""
    token = tmp_path / "token"
    token.write_text(f"Bearer {SECRET}-1\n")
    monkeypatch.setenv("SIDECAR_TEST_API_KEY", f"{SECRET}-key")
    path = tmp_path / "sidecar.yaml"
    async with FakeUpstream() as up:
        headers = {
            "authorization": {"file": str(token)},
            "x-api-key": {"env": "SIDECAR_TEST_API_KEY"},
        }
        write(path, {"upstreams": {"pay": {"url": up.url, "request_headers": headers}}})
        async with running_sidecar(path.read_text(), config_path=str(path)) as s:
            admin = f"http://127.0.0.1:{s.admin_port}"
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{s.http_port}/pay/")
                shown = await client.get(f"{admin}/config")
                # the secret rotates (a new file content); a reload picks it up
                token.write_text(f"Bearer {SECRET}-2\n")
                assert await s.reload() is True
                await client.get(f"http://127.0.0.1:{s.http_port}/pay/")
                shown_after = await client.get(f"{admin}/config")
                # a rotated secret that is unusable is refused without showing it
                token.write_text(f"Bearer {SECRET}-3\r\nx-evil: 1\n")
                with captured_log() as lines:
                    assert await s.reload() is False
                await client.get(f"http://127.0.0.1:{s.http_port}/pay/")
                upstreams_view = await client.get(f"{admin}/upstreams")
    received = [{k.lower(): v for k, v in r.headers.items()} for r in up.requests]
    assert [h["authorization"] for h in received] == [
        f"Bearer {SECRET}-1",
        f"Bearer {SECRET}-2",
        f"Bearer {SECRET}-2",
    ]
    assert received[0]["x-api-key"] == f"{SECRET}-key"
    for view in (shown, shown_after):
        assert view.status_code == 200
        assert SECRET not in view.text
        assert view.json()["upstreams"]["pay"]["request_headers"] == headers
    assert SECRET not in upstreams_view.text
    assert lines and SECRET not in json.dumps(lines)
    assert any(f"the secret {{file: {token}}}" in line.get("problem", "") for line in lines)


async def test_reload_without_a_file_keeps_the_running_config() -> None:
    """A SIGHUP to a sidecar on its embedded default or a test config is a logged no-op."""
    async with running_sidecar({"upstreams": {"a": {"adapter": "echo"}}}) as s:
        before = s.config
        assert await s.reload() is False
        assert s.config is before


# --- as a process: SIGHUP and the file watcher -------------------------------------------------


#: SIGTERM drains at once: these tests stop the sidecar cleanly, not after the wait for the app to
#: go quiet (test_pod_lifecycle's), which would add its 2 s default to every stop
NO_QUIET_WAIT = {"shutdown": {"app_quiet_period": "0s"}}


def echo_config(version: str) -> dict[str, Any]:
    return {
        **NO_QUIET_WAIT,
        "upstreams": {"echo": {"adapter": "echo", "request_headers": {"x-config": version}}},
    }


def served_version(p: SidecarProcess) -> str | None:
    r = httpx.get(f"{p.http_url}/echo/", timeout=5)
    return r.json()["headers"].get("x-config") if r.status_code == 200 else None


def wait_for(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"not within {limit}s"
        time.sleep(0.05)


def metric(p: SidecarProcess, result: str) -> str:
    text = httpx.get(f"{p.admin_url}/metrics", timeout=5).text
    prefix = f'sidecar_config_reloads_total{{result="{result}"}} '
    return next((line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix)), "")


def test_sighup_reloads_and_rereads_secrets(tmp_path: Path) -> None:
    """`kill -HUP` re-reads the config and its secret files without a restart."""
    # the config file itself never changes here, so the file watcher has nothing to see: only
    # the signal can make the new secret value reach the upstream
    # (a real upstream: the echo adapter redacts values read from secrets)
    token = tmp_path / "token"
    token.write_text("v1\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = {
        **NO_QUIET_WAIT,
        "upstreams": {"up": {"url": f"http://127.0.0.1:{port}", "request_headers": {}}},
    }
    config["upstreams"]["up"]["request_headers"]["x-config"] = {"file": str(token)}

    def sent(p: SidecarProcess) -> str:
        assert httpx.get(f"{p.http_url}/up/", timeout=5).status_code == 200
        return {k.lower(): v for k, v in up.requests[-1][1].items()}["x-config"]

    with HostUpstream("127.0.0.1", port) as up, SidecarProcess(config) as p:
        assert sent(p) == "v1"
        token.write_text("v2\n")
        p.send(signal.SIGHUP)
        wait_for(lambda: sent(p) == "v2")
        assert metric(p, "ok") == "1.0"
        assert any(line.get("msg") == "config reloaded" for line in p.log_lines())
        assert p.terminate() == 0


def test_an_edited_file_is_reloaded_without_a_signal() -> None:
    """Editing the file is enough: the sidecar notices and reloads within seconds."""
    with SidecarProcess(echo_config("v1")) as p:
        replace_file(p.config_path, yaml.safe_dump({**EPHEMERAL, **echo_config("v2")}))
        wait_for(lambda: served_version(p) == "v2")
        # an in-place rewrite (same inode) is seen too
        p.config_path.write_text(yaml.safe_dump({**EPHEMERAL, **echo_config("v3")}))
        wait_for(lambda: served_version(p) == "v3")


def test_kubernetes_configmap_symlink_swap_is_reloaded(tmp_path: Path) -> None:
    """A ConfigMap update (kubelet repoints `..data` at a new directory) reaches the sidecar."""
    # the layout kubelet makes: sidecar.yaml -> ..data/sidecar.yaml, ..data -> ..<timestamp>
    mount = tmp_path / "config"
    first = mount / "..2026_01_01_00_00_00.1"
    first.mkdir(parents=True)
    (first / "sidecar.yaml").write_text(yaml.safe_dump({**EPHEMERAL, **echo_config("v1")}))
    (mount / "..data").symlink_to(first.name)
    (mount / "sidecar.yaml").symlink_to("..data/sidecar.yaml")
    p = SidecarProcess(echo_config("unused"))
    p.config_path = mount / "sidecar.yaml"
    with p:
        assert served_version(p) == "v1"
        # the update: a new directory, a temporary link to it renamed over ..data, the old
        # directory removed; the path the sidecar was given never changes
        second = mount / "..2026_01_01_00_01_00.2"
        second.mkdir()
        (second / "sidecar.yaml").write_text(yaml.safe_dump({**EPHEMERAL, **echo_config("v2")}))
        (mount / "..data_tmp").symlink_to(second.name)
        os.replace(mount / "..data_tmp", mount / "..data")
        shutil.rmtree(first)
        wait_for(lambda: served_version(p) == "v2")
        assert metric(p, "ok") == "1.0"


def replace_file(path: Path, text: str) -> None:
    """Write the whole file at once, as editors and config tools do (no half-written state)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_a_bad_edit_is_refused_in_the_log_and_the_old_config_keeps_serving() -> None:
    """An operator's typo shows up as JSON error lines with the problem; traffic is unaffected."""
    with SidecarProcess(echo_config("v1")) as p:
        replace_file(
            p.config_path,
            yaml.safe_dump(EPHEMERAL) + "upstreams:\n  echo: {adapter: echo, timeout: fast}\n",
        )
        wait_for(lambda: metric(p, "refused") == "1.0")
        refused = [line for line in p.log_lines() if line.get("msg") == "config refused"]
        assert [line["problem"] for line in refused] == [
            f'{p.config_path}: upstreams.echo.timeout: expected a duration like "2s", got "fast"'
        ]
        assert refused[0]["level"] == "error"
        assert served_version(p) == "v1"
        # fixing the file is enough to get the new config in
        replace_file(p.config_path, yaml.safe_dump({**EPHEMERAL, **echo_config("v2")}))
        wait_for(lambda: served_version(p) == "v2")
        assert metric(p, "ok") == "1.0"
        assert metric(p, "refused") == "1.0"
        assert p.terminate() == 0


SLOW_START_PLUGIN = """
import asyncio, contextlib, os
from sidecar import hookimpl

@contextlib.asynccontextmanager
async def slow(sidecar):
    folder = os.environ["SLOW_START_DIR"]
    open(os.path.join(folder, "entered"), "w").close()
    while not os.path.exists(os.path.join(folder, "release")):
        await asyncio.sleep(0.02)
    yield

@hookimpl
def sidecar_register_lifespans(registry):
    registry.add("slow", slow)
"""


def test_sighup_while_starting_is_served_after_start_not_fatal(tmp_path: Path) -> None:
    """A reload asked for while the sidecar starts (SIGHUP kills by default) waits for start-up."""
    # a plugin whose start-up waits for a file holds the sidecar in "starting" for as long as
    # the test needs; a dist-info on PYTHONPATH makes it an installed plugin without pip
    site = tmp_path / "site"
    info = site / "sidecar_slow_start-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "sidecar_slow_start.py").write_text(SLOW_START_PLUGIN)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sidecar-slow-start\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text("[sidecar]\nslow_start = sidecar_slow_start\n")
    config = tmp_path / "sidecar.yaml"
    write(config, echo_config("v1"))
    env = {**os.environ, "PYTHONPATH": str(site), "SLOW_START_DIR": str(tmp_path)}
    log = tmp_path / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(  # noqa: S603
            [str(Path(sys.executable).with_name("sidecar")), "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        wait_for(lambda: (tmp_path / "entered").exists())
        proc.send_signal(signal.SIGHUP)
        (tmp_path / "release").touch()
        messages = lambda: [json.loads(line)["msg"] for line in log.read_text().splitlines()]  # noqa: E731
        wait_for(lambda: "config reloaded" in messages())
        assert proc.poll() is None
        assert messages().index("sidecar ready") < messages().index("config reloaded")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
