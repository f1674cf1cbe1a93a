"""The access log (JSON lines on stdout) and the sidecar's own log (JSON lines on stderr)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from typing import Any

import grpc
import httpx
import pytest
import yaml
from aiohttp import web

from sidecar.telemetry.logs import ACCESS_LOGGER
from sidecar.testing import FakeUpstream, SidecarProcess, running_sidecar
from tests.grpc_echo import echo_pb2 as pb
from tests.grpc_echo import echo_pb2_grpc
from tests.integration.grpc_upstream import SERVICE, EchoUpstream


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FIELDS = {
    "listener",
    "method",
    "path",
    "upstream",
    "route",
    "status",
    "duration_ms",
    "bytes_received",
    "bytes_sent",
    "client",
}
EPHEMERAL = {
    "admin": {"address": "127.0.0.1:0"},
    "http": {"address": "127.0.0.1:0"},
    "grpc": {"address": "127.0.0.1:0"},
}
#: SIGTERM drains at once: these tests read the log after a clean stop, not the wait for the app
#: to go quiet (test_pod_lifecycle's), which would add its 2 s default to every stop
NO_QUIET_WAIT = {"shutdown": {"app_quiet_period": "0s"}}


async def wait_for_lines(p: SidecarProcess, n: int, limit: float = 10.0) -> list[dict[str, Any]]:
    """The access-log lines once there are at least ``n`` (they are written as calls end)."""
    deadline = time.monotonic() + limit
    while True:
        lines = p.log_lines(stdout=True)
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        await asyncio.sleep(0.02)


async def test_one_json_line_per_call_on_stdout_with_the_sidecars_decisions() -> None:
    """An operator can see every call, how it ended and who decided, without any secret."""
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/hang":
            await release.wait()
        return web.Response(text="x" * 10)

    async with FakeUpstream(answer) as up:
        config = {
            **NO_QUIET_WAIT,
            "upstreams": {
                "up": {"url": up.url},
                "slow": {"url": up.url, "timeout": "200ms"},
                "down": {"url": "http://127.0.0.1:1"},
            },
        }
        try:
            with SidecarProcess(config) as p:
                calls = [
                    ("GET", "/up/a?token=QueryS3cret", 200),
                    ("POST", "/up/b", 200),
                    ("GET", "/down/x", 502),
                    ("GET", "/slow/hang", 504),
                    ("GET", "/nowhere/x", 404),
                ]
                async with httpx.AsyncClient() as c:
                    bodies = []
                    for method, path, status in calls:
                        r = await c.request(method, f"{p.http_url}{path}", content=b"hello")
                        assert r.status_code == status
                        bodies.append(len(r.content))
                lines = await wait_for_lines(p, len(calls))
                assert p.terminate() == 0
                own = p.log_lines()
        finally:
            release.set()
    assert len(lines) == len(calls)
    for line in lines:
        assert FIELDS <= set(line), line
        assert line["logger"] == "sidecar.access" and line["listener"] == "http"
        assert line["client"].startswith("127.0.0.1:")
        assert line["duration_ms"] >= 0
    got = [
        (x["method"], x["path"], x["upstream"], x["status"], x.get("error"), x["level"])
        for x in lines
    ]
    assert got == [
        ("GET", "/a", "up", 200, None, "info"),
        ("POST", "/b", "up", 200, None, "info"),
        ("GET", "/x", "down", 502, "upstream_connect", "warning"),
        ("GET", "/hang", "slow", 504, "upstream_timeout", "warning"),
        ("GET", "/nowhere/x", "", 404, "no_route", "warning"),
    ]
    # the bytes each body really had, the sidecar's own error texts (502, 504, 404) included
    assert [x["bytes_sent"] for x in lines] == bodies and bodies[:2] == [10, 10]
    assert all(n > 0 for n in bodies)
    assert [x["bytes_received"] for x in lines] == [5, 5, 5, 5, 5]
    assert lines[3]["duration_ms"] >= 190  # the 200 ms budget was spent (timers are ms-grained)
    assert "QueryS3cret" not in p.stdout_path.read_text()
    # the sidecar's own log: JSON lines on stderr, from start-up to the end
    assert own and not [x for x in own if x.get("unparsed")]
    assert all({"ts", "level", "logger", "msg"} <= set(x) for x in own)
    msgs = [x["msg"] for x in own]
    assert "sidecar ready" in msgs and msgs[-1] == "stopped"
    assert not [x for x in own if x["logger"] == "sidecar.access"]


async def test_above_info_only_failed_calls_are_logged() -> None:
    """With `log_level: warning`, successful calls write nothing; failures still do."""
    async with FakeUpstream() as up:
        config = {
            # no "sidecar ready" line at this level: fixed ports, readiness from /readyz
            "admin": {"address": f"127.0.0.1:{free_port()}"},
            "http": {"address": f"127.0.0.1:{free_port()}"},
            "telemetry": {"log_level": "warning"},
            **NO_QUIET_WAIT,
            "upstreams": {"up": {"url": up.url}, "down": {"url": "http://127.0.0.1:1"}},
        }
        with SidecarProcess(config) as p:
            async with httpx.AsyncClient() as c:
                for _ in range(5):
                    assert (await c.get(f"{p.http_url}/up/ok")).status_code == 200
                assert (await c.get(f"{p.http_url}/down/x")).status_code == 502
            lines = await wait_for_lines(p, 1)
            assert p.terminate() == 0
            assert p.log_lines() == []  # nothing to say at warning on a clean start and stop
    assert [(x["status"], x.get("error")) for x in lines] == [(502, "upstream_connect")]


TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_a_line_says_the_trace_the_retries_and_the_rate_limit_wait() -> None:
    """An operator can join a line to the app's trace and see why a call was slow."""
    seen: dict[str, int] = {}

    async def answer(request: web.Request) -> web.Response:
        seen[request.path] = seen.get(request.path, 0) + 1
        if request.path == "/flaky" and seen[request.path] == 1:
            return web.Response(status=503)  # the first attempt fails, the retry succeeds
        return web.Response(text="fine")

    async with FakeUpstream(answer) as up:
        config = {
            **NO_QUIET_WAIT,
            "upstreams": {
                "up": {"url": up.url, "retry": {"backoff": {"base": "1ms", "max": "2ms"}}},
                "paced": {
                    "url": up.url,
                    "rate_limit": {"rate": "5/s", "burst": 1, "on_limit": "wait"},
                },
            },
        }
        with SidecarProcess(config) as p:
            async with httpx.AsyncClient() as c:
                r = await c.post(
                    f"{p.http_url}/up/traced",
                    content=b"0123456789",
                    headers={"traceparent": TRACEPARENT},
                )
                assert r.status_code == 200
                assert (await c.get(f"{p.http_url}/up/flaky")).status_code == 200
                for _ in range(2):  # the second waits ~200 ms for its token
                    assert (await c.get(f"{p.http_url}/paced/x")).status_code == 200
            lines = await wait_for_lines(p, 4)
            assert p.terminate() == 0
    traced, flaky, first, paced = lines
    assert traced["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (traced["bytes_received"], traced["bytes_sent"]) == (10, 4)
    assert "attempts" not in traced and "decision" not in traced
    assert flaky["attempts"] == 2 and flaky["status"] == 200 and "trace_id" not in flaky
    assert "decision" not in first
    assert paced["decision"] == "rate_limit:wait" and paced["level"] == "info"
    assert paced["duration_ms"] >= 100


async def test_a_reload_changes_the_access_log_level() -> None:
    """`telemetry.access_log.level: warning` takes effect on reload: only failures are logged."""

    def config(level: str) -> dict[str, Any]:
        return {
            **EPHEMERAL,
            **NO_QUIET_WAIT,
            "telemetry": {"access_log": {"level": level}},
            "upstreams": {"up": {"adapter": "echo"}, "down": {"url": "http://127.0.0.1:1"}},
        }

    with SidecarProcess(config("info")) as p:
        async with httpx.AsyncClient() as c:
            assert (await c.get(f"{p.http_url}/up/before")).status_code == 200
            await wait_for_lines(p, 1)
            p.config_path.write_text(yaml.safe_dump(config("warning")))
            p.send(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while not any(x.get("msg") == "config reloaded" for x in p.log_lines()):
                assert time.monotonic() < deadline, p.log_path.read_text()
                await asyncio.sleep(0.02)
            assert (await c.get(f"{p.http_url}/up/after")).status_code == 200
            assert (await c.get(f"{p.http_url}/down/after")).status_code == 502
        lines = await wait_for_lines(p, 2)
        assert p.terminate() == 0
    assert [(x["path"], x["level"]) for x in lines] == [("/before", "info"), ("/after", "warning")]
    assert lines[1]["error"] == "upstream_connect"


async def test_grpc_calls_log_their_grpc_status_and_trace(caplog: pytest.LogCaptureFixture) -> None:
    """On the gRPC port a line says the gRPC status the app got; `status` is HTTP's 200."""
    async with EchoUpstream() as up:
        config = {
            "upstreams": {
                "echo": {
                    "adapter": "grpc",
                    "url": up.url,
                    "services": [SERVICE],
                    "retry": {"enabled": False},
                }
            }
        }
        with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
            async with running_sidecar(config) as s:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel:
                    stub = echo_pb2_grpc.EchoStub(channel)
                    meta = (("traceparent", TRACEPARENT),)
                    await stub.Unary(pb.EchoRequest(payload=b"hi"), metadata=meta, timeout=10)
                    for code in (5, 14):
                        with pytest.raises(grpc.aio.AioRpcError):
                            await stub.Unary(pb.EchoRequest(fail_code=code), timeout=10)
                    unknown = channel.unary_unary("/nowhere.v1.Nope/Call")
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await unknown(b"", timeout=10)
                    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    lines = [
        {"level": r.levelname.lower(), **r.fields}  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == ACCESS_LOGGER
    ]
    got = [
        (x["listener"], x["path"], x["status"], x.get("grpc_status"), x["level"], x.get("error"))
        for x in lines
    ]
    assert got == [
        ("grpc", "/echo.v1.Echo/Unary", 200, 0, "info", None),
        ("grpc", "/echo.v1.Echo/Unary", 200, 5, "info", None),  # NOT_FOUND: an answer
        ("grpc", "/echo.v1.Echo/Unary", 200, 14, "warning", None),  # UNAVAILABLE: a failure
        ("grpc", "/nowhere.v1.Nope/Call", 200, 12, "warning", "no_route"),
    ]
    assert lines[0]["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    # a unary call reaches the chain as its one whole message (bytes), so its size is counted
    assert lines[0]["bytes_sent"] > 0 and lines[0]["bytes_received"] > 0
