"""The access log (JSON lines on stdout) and the sidecar's own log (JSON lines on stderr)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
from aiohttp import web

from sidecar.testing import FakeUpstream, SidecarProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FIELDS = {"method", "path", "upstream", "route", "status", "duration_ms", "bytes_sent", "client"}


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
            "upstreams": {
                "up": {"url": up.url},
                "slow": {"url": up.url, "timeout": "200ms"},
                "down": {"url": "http://127.0.0.1:1"},
            }
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
                    for method, path, status in calls:
                        r = await c.request(method, f"{p.http_url}{path}", content=b"hello")
                        assert r.status_code == status
                lines = await wait_for_lines(p, len(calls))
                assert p.terminate() == 0
                own = p.log_lines()
        finally:
            release.set()
    assert len(lines) == len(calls)
    for line in lines:
        assert FIELDS <= set(line), line
        assert line["logger"] == "sidecar.access"
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
    assert [x["bytes_sent"] for x in lines[:2]] == [10, 10]
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
