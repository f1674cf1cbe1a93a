"""A reload (SIGHUP) while app connections keep pipelined calls in flight, each call resumed inside
the read that brought its upstream's answer, against a real ``sidecar run`` child process (the
build the suite runs under)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sidecar.testing import SidecarProcess
from tests.integration.pool_state import settled_pool
from tests.integration.raw_http import RawConnection, get
from tests.integration.raw_upstream import RawUpstream, UpstreamConn, ok_response

WAIT = 10.0
APPS = 3
DEPTH = 6


async def test_calls_pipelined_across_a_reload_are_each_answered_in_order(tmp_path: Path) -> None:
    """Under a reload, every pipelined call is answered with its own answer, in order; each app
    connection moves from the old config to the new once and for all, and no upstream
    connection is left busy."""
    token = tmp_path / "token"
    token.write_text("v1\n")

    async def script(conn: UpstreamConn) -> None:
        while (req := await conn.request()) is not None:
            await conn.send(ok_response(f"{req.target} {req.header('x-config')}".encode()))

    async with RawUpstream(script) as up:
        config = {
            "shutdown": {"app_quiet_period": "0s"},
            "upstreams": {
                "up": {"url": up.url, "request_headers": {"x-config": {"file": str(token)}}}
            },
        }
        proc = await asyncio.to_thread(SidecarProcess(config).start)
        seen: list[list[str]] = [[] for _ in range(APPS)]
        reloaded = asyncio.Event()

        async def app(n: int) -> None:
            async with await RawConnection.open(proc.http_port) as conn:
                rounds = 0
                # until this connection has seen the new config for a few rounds (bounded)
                while sum(v == "v2" for v in seen[n]) < 3 * DEPTH:
                    rounds += 1
                    assert rounds < 2000, "the reload never reached this connection"
                    await conn.send(b"".join(get(f"/up/{n}-{i}") for i in range(DEPTH)))
                    for i in range(DEPTH):
                        resp = await conn.response(timeout=WAIT)
                        assert resp.status == 200, resp
                        target, version = resp.body.decode().split(" ")
                        assert target == f"/{n}-{i}"
                        seen[n].append(version)
                    if rounds == 3 and n == 0:
                        reloaded.set()

        async def reload() -> None:
            await asyncio.wait_for(reloaded.wait(), WAIT)
            token.write_text("v2\n")
            proc.send(signal.SIGHUP)

        try:
            await asyncio.wait_for(asyncio.gather(reload(), *(app(n) for n in range(APPS))), 60)
            for versions in seen:
                switched = versions.index("v2")
                assert set(versions[:switched]) == {"v1"} and set(versions[switched:]) == {"v2"}
            await settled_pool(proc)
            assert any(line.get("msg") == "config reloaded" for line in proc.log_lines())
        finally:
            proc.kill()
