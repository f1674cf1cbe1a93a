"""Retries and deadlines of calls that resume inside the read that brought their upstream's answer.

A response that arrives whole gives its connection back to the pool before the call resumes, and
the call resumes in that same read: a retry, or the next pipelined request, can take the very
connection that just answered. These tests run a real ``sidecar run`` child process (the build the
suite runs under) against scripted upstreams and check what an operator sees afterwards: the
right answer for each request, in order, and a pool with no connection busy and none opened beyond
what the failures cost.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sidecar.testing import SidecarProcess
from tests.integration.pool_state import settled_pool
from tests.integration.raw_http import RawConnection, get
from tests.integration.raw_upstream import RawUpstream, UpstreamConn, ok_response

WAIT = 10.0
#: quick retries, as many as the test makes (the default budget allows three a window)
RETRY = {"backoff": {"base": "1ms", "max": "2ms"}, "budget": {"min_retries": 100}}
#: a test that makes failures on purpose keeps its upstream's breaker out of the way
NO_BREAKER = {"enabled": False}


async def _pipelined_gets(up: RawUpstream, calls: int) -> dict[str, Any]:
    """``calls`` pipelined GETs of ``/up/<i>`` through a sidecar in front of ``up`` (quick
    retries, no breaker): each must come back 200 with its own path, in order. Returns the
    ``up`` pool once settled."""
    cfg = {"upstreams": {"up": {"url": up.url, "retry": RETRY, "circuit_breaker": NO_BREAKER}}}
    proc = await asyncio.to_thread(SidecarProcess(cfg).start)
    try:
        async with await RawConnection.open(proc.http_port) as conn:
            await conn.send(b"".join(get(f"/up/{i}") for i in range(calls)))
            for i in range(calls):
                resp = await conn.response(timeout=WAIT)
                assert (resp.status, resp.body) == (200, f"/{i}".encode())
        return await settled_pool(proc)
    finally:
        proc.kill()


def _unavailable() -> bytes:
    return b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy"


async def test_pipelined_calls_each_retried_after_a_503_ride_one_upstream_connection() -> None:
    """Each of ten pipelined GETs is answered 503 then 200: the app gets the ten 200s in order,
    and every attempt rode the one keep-alive upstream connection."""

    async def script(conn: UpstreamConn) -> None:
        tried: set[str] = set()
        while (req := await conn.request()) is not None:
            if req.target not in tried:
                tried.add(req.target)
                await conn.send(_unavailable())
            else:
                await conn.send(ok_response(req.target.encode()))

    async with RawUpstream(script) as up:
        pool = await _pipelined_gets(up, 10)
    assert pool["connections_opened"] == 1 and len(up.conns) == 1, pool
    assert [r.target for r in up.conns[0].requests] == [
        f"/{i}" for i in range(10) for _ in range(2)
    ]


async def test_a_reset_first_connection_costs_one_new_connection_and_no_leak() -> None:
    """An upstream that resets the first connection before answering: the GET is retried on one
    new connection, the app gets its 200, later calls reuse that connection and none is left
    busy."""

    async def script(conn: UpstreamConn) -> None:
        while (req := await conn.request()) is not None:
            if conn.index == 0:
                conn.reset()
                return
            await conn.send(ok_response(req.target.encode()))

    async with RawUpstream(script) as up:
        pool = await _pipelined_gets(up, 5)
    assert pool["connections_opened"] == 2 and len(up.conns) == 2, pool
    assert pool["connections"]["idle"] == 1, pool


async def test_a_deadline_racing_the_answer_never_hands_an_app_someone_elses_answer() -> None:
    """With ``x-sidecar-timeout: 50ms`` against an upstream answering around 50 ms, each call
    gets its own answer or a 504, never another call's, the app's connection stays in step, and
    every upstream connection ends idle or closed."""
    delays = [0.040 + 0.001 * (i % 21) for i in range(42)]

    async def script(conn: UpstreamConn) -> None:
        while (req := await conn.request()) is not None:
            await asyncio.sleep(delays[int(req.target[1:])])  # a slow upstream, on purpose
            await conn.send(ok_response(req.target.encode()))

    async with RawUpstream(script) as up:
        cfg = {
            "upstreams": {
                "up": {"url": up.url, "retry": {"enabled": False}, "circuit_breaker": NO_BREAKER}
            }
        }
        proc = await asyncio.to_thread(SidecarProcess(cfg).start)
        try:
            outcomes = []
            async with await RawConnection.open(proc.http_port) as conn:
                for i in range(len(delays)):
                    await conn.send(get(f"/up/{i}", extra="x-sidecar-timeout: 50ms\r\n"))
                    resp = await conn.response(timeout=WAIT)
                    assert resp.status in (200, 504), resp
                    if resp.status == 200:
                        assert resp.body == f"/{i}".encode()
                    else:
                        assert resp.header("x-sidecar-error") == "upstream_timeout", resp
                    outcomes.append(resp.status)
                # in step afterwards: a call with time to spare gets its own answer
                await conn.send(get("/up/0"))
                resp = await conn.response(timeout=WAIT)
                assert (resp.status, resp.body) == (200, b"/0")
            pool = await settled_pool(proc)
            # a call cut by its deadline closes its connection; an answered one leaves it idle
            assert pool["connections_opened"] <= outcomes.count(504) + 1, (pool, outcomes)
        finally:
            proc.kill()
