"""10 000 failing calls leave nothing behind: no task, no file descriptor, no Python object, no
memory, no concurrency slot or breaker trial.

The mix covers every way the resilience policies end a call: connection refused (retried),
reset before the response head, a body cut mid-way, 503 storms with retries on, breaker-open
rejections and load-shedding rejections. The sidecar runs in this process so its tasks can be
counted; 50 keep-alive app connections drive it.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import socket
from collections import Counter
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from sidecar.app import Sidecar
from sidecar.testing import FakeUpstream, async_wait_until, running_sidecar

from .raw_http import RawConnection, get
from .raw_upstream import RawUpstream, UpstreamConn

CALLS = 10_000
WORKERS = 50
#: the mix, by upstream: each is one way a call fails.
MIX = (
    *("refused", "reset", "storm", "open", "busy") * 3,
    *("refused", "cut", "storm", "open", "busy"),
)
EXPECTED = {
    "refused": (502, "upstream_connect"),
    "reset": (502, "upstream_reset"),
    "storm": (503, None),  # the upstream's own 503, after the retries
    "open": (503, "circuit_open"),
    "busy": (503, "overloaded"),
}
FAST_RETRY = {
    "attempts": 3,
    "backoff": {"base": "1ms", "max": "2ms"},
    "budget": {"ratio": 10.0, "min_retries": 10_000},  # every failure is retried
}
NO_BREAKER = {"enabled": False}


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _reset_before_head(conn: UpstreamConn) -> None:
    if await conn.request() is not None:
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-le")
        conn.reset()


async def _cut_mid_body(conn: UpstreamConn) -> None:
    if await conn.request() is not None:
        await conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
        conn.reset()


class ForgetfulRawUpstream(RawUpstream):
    """A RawUpstream that forgets each connection once its script ended: over thousands of
    connections its records would look like the sidecar's leak."""

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await super()._accept(reader, writer)
        finally:
            self.conns = [c for c in self.conns if c.writer is not writer]


class ForgetfulUpstream(FakeUpstream):
    """A FakeUpstream that keeps no record of the requests it answered (same reason)."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super()._handle(request)
        finally:
            self.requests.clear()


async def _storm(request: web.Request) -> web.StreamResponse:
    return web.Response(status=503, text="storm")


async def _drive(port: int, kinds: Iterator[str], n: int, seen: Counter[Any]) -> None:
    """``n`` calls from ``WORKERS`` keep-alive connections; outcomes counted in ``seen``."""
    left = iter(range(n))

    async def worker() -> None:
        conn = await RawConnection.open(port)
        try:
            for _ in left:
                kind = next(kinds)
                await conn.send(get(f"/{kind}/x"))
                try:
                    resp = await conn.response()
                except (asyncio.IncompleteReadError, ConnectionError):
                    seen[(kind, "cut")] += 1
                    await conn.close()
                    conn = await RawConnection.open(port)
                    continue
                seen[(kind, resp.status, resp.header("x-sidecar-error"))] += 1
                if resp.header("connection") == "close":
                    await conn.close()
                    conn = await RawConnection.open(port)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(WORKERS)))


def _policies(s: Sidecar) -> dict[str, Any]:
    return {name: up["policies"] for name, up in s.describe_upstreams().items()}


async def test_ten_thousand_failing_calls_leak_no_task_fd_object_or_memory() -> None:
    """Every failure path gives back what it took: after 10 000 failing calls, tasks, fds,
    objects and RSS are back to where they were."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = sock.getsockname()[1]
    sock.close()
    release = asyncio.Event()

    async def held(request: web.Request) -> web.StreamResponse:
        await asyncio.wait_for(release.wait(), 30)
        return web.Response(text="finally")

    async with (
        ForgetfulRawUpstream(_reset_before_head) as reset,
        ForgetfulRawUpstream(_cut_mid_body) as cut,
        ForgetfulUpstream(_storm) as storm,
        FakeUpstream(held) as busy,
    ):
        dead_url = f"http://127.0.0.1:{dead}"
        cfg = {
            "telemetry": {"access_log": {"enabled": False}},
            "upstreams": {
                "refused": {"url": dead_url, "retry": FAST_RETRY, "circuit_breaker": NO_BREAKER},
                "reset": {"url": reset.url, "retry": FAST_RETRY, "circuit_breaker": NO_BREAKER},
                "cut": {"url": cut.url, "circuit_breaker": NO_BREAKER},
                # a bounded pool: its warm connections are part of the baseline
                "storm": {
                    "url": storm.url,
                    "retry": FAST_RETRY,
                    "circuit_breaker": NO_BREAKER,
                    "pool": {"max_connections": 4},
                },
                "open": {
                    "url": dead_url,
                    "circuit_breaker": {
                        "consecutive_failures": 1,
                        "open_for": "1h",
                        "max_open_for": "1h",
                    },
                },
                "busy": {"url": busy.url, "concurrency": {"max_in_flight": 1}},
            },
        }

        async with running_sidecar(cfg) as s:
            assert s.http is not None
            port = s.http_port
            # one call holds busy's only slot for the whole test
            holder = await RawConnection.open(port)
            await holder.send(get("/busy/held"))
            await async_wait_until(lambda: len(busy.requests) == 1)

            try:
                # warm up at full concurrency: pools, metric children and the allocator's arenas
                # reach their working size; what they keep is not a leak
                warm: Counter[Any] = Counter()
                await _drive(port, itertools.cycle(MIX), 1000, warm)
                await async_wait_until(lambda: len(s.http.connections) == 1)  # the holder
                gc.collect()
                tasks0, fds0, rss0 = len(asyncio.all_tasks()), _fds(), _rss()
                objects0 = len(gc.get_objects())

                seen: Counter[Any] = Counter()
                await _drive(port, itertools.cycle(MIX), CALLS, seen)

                # every call failed the way its upstream fails
                assert sum(seen.values()) == CALLS
                for kind, (status, error) in EXPECTED.items():
                    assert seen[(kind, status, error)] == CALLS * MIX.count(kind) // len(MIX), (
                        kind,
                        seen,
                    )
                assert seen[("cut", "cut")] == CALLS * MIX.count("cut") // len(MIX), seen

                # back to the baseline, once the app connections are gone
                await async_wait_until(lambda: len(s.http.connections) == 1, 15)
                await async_wait_until(lambda: len(asyncio.all_tasks()) <= tasks0, 15)
                await async_wait_until(lambda: _fds() <= fds0, 15)
                gc.collect()
                grown = len(gc.get_objects()) - objects0
                assert grown < 1000, f"{grown} more objects after {CALLS} calls"
                assert _rss() - rss0 < 8 * 1024 * 1024, (_rss() - rss0) / 1e6
                policies = _policies(s)
                assert policies["busy"]["concurrency"]["in_flight"] == 1  # the holder, nothing else
                for name in ("refused", "reset", "cut", "storm", "open"):
                    assert policies[name]["concurrency"]["in_flight"] == 0, name
                assert policies["open"]["circuit_breaker"]["state"] == "open"
            finally:
                release.set()  # a failed assertion must not leave the sidecar's drain waiting
            resp = await holder.response()
            assert (resp.status, resp.body) == (200, b"finally")
            await holder.close()
