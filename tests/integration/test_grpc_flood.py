"""The gRPC port's HTTP/2 front under frame floods (grpc.flood_protection, docs/grpc.md): a raw
h2 client (tests/integration/h2_flood.py, a child process) floods a ``sidecar run`` child
process, while a good client calls both ports from this process through real upstreams.

What a user relies on: a flooding connection gets GOAWAY(ENHANCE_YOUR_CALM) and is closed, is
counted and logged; the sidecar's memory stays bounded; other connections and the HTTP port
keep being served while a flood runs; an app that cancels some calls is never cut off."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from sidecar.testing import FakeUpstream, SidecarProcess, async_wait_until, running_sidecar
from tests.grpc_echo import echo_pb2 as pb
from tests.grpc_echo import echo_pb2_grpc
from tests.integration.grpc_upstream import SERVICE, EchoUpstream

ROOT = Path(__file__).parents[2]
ENHANCE_YOUR_CALM, PROTOCOL_ERROR = 11, 1
#: a good call must be answered within this while a flood runs (a quiet call takes ~5 ms).
GOOD_CALL_BOUND = 1.0
#: the sidecar's resident memory may grow this much over a flood (it grew by ~170 MB before).
RSS_GROWTH_BOUND_MB = 40


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


async def flood(port: int, kind: str, seconds: float, *args: str) -> list[dict[str, Any]]:
    """Run the flooder for up to ``seconds`` (a child process); one report per connection."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.h2_flood",
        "--port",
        str(port),
        "--kind",
        kind,
        "--seconds",
        str(seconds),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(seconds + 30):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    reports: list[dict[str, Any]] = json.loads(out)
    return reports


def flood_closed(admin_url: str, reason: str) -> float:
    """``sidecar_http2_flood_closed_total{listener="grpc",reason=...}`` from /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=5) as r:  # noqa: S310
        text = r.read().decode()
    pattern = rf'^sidecar_http2_flood_closed_total\{{listener="grpc",reason="{reason}"\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def flood_log_lines(p: SidecarProcess) -> list[dict[str, Any]]:
    return [x for x in p.log_lines() if x.get("msg") == "app connection closed: HTTP/2 flood"]


@asynccontextmanager
async def sidecar_with_upstreams(
    **grpc: Any,
) -> AsyncIterator[tuple[SidecarProcess, FakeUpstream, EchoUpstream]]:
    """``sidecar run`` with an HTTP upstream (``web``) and a gRPC echo upstream, both here."""
    async with FakeUpstream() as web, EchoUpstream() as echo:
        cfg = {
            "upstreams": {
                "web": {"url": web.url},
                "echo": {"adapter": "grpc", "url": echo.url, "services": [SERVICE]},
            },
            "grpc": {"address": "127.0.0.1:0", "server": "h2", **grpc},
            "telemetry": {"access_log": {"enabled": False}},
        }
        with SidecarProcess(cfg) as p:
            yield p, web, echo


class GoodClient:
    """Calls both ports one call at a time (HTTP through ``web``, gRPC Echo.Unary) until
    stopped; records each call's latency (a failed call counts as infinitely slow)."""

    def __init__(self, p: SidecarProcess) -> None:
        self.p = p
        self.http: list[float] = []
        self.grpc: list[float] = []
        self.errors: list[str] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            grpc.aio.insecure_channel(self.p.grpc_target) as channel,
        ):
            stub = echo_pb2_grpc.EchoStub(channel)
            await stub.Unary(pb.EchoRequest(payload=b"warm"), timeout=10)  # connected
            while not self.stop.is_set():
                start = time.monotonic()
                try:
                    async with session.get(f"{self.p.http_url}/web/ok") as r:
                        await r.read()
                        ok = r.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                self.http.append(time.monotonic() - start if ok else float("inf"))
                start = time.monotonic()
                try:
                    reply = await stub.Unary(pb.EchoRequest(payload=b"good"), timeout=10)
                    ok = reply.payload == b"good"
                except grpc.aio.AioRpcError as e:
                    trailing = dict(e.trailing_metadata() or ())
                    self.errors.append(f"{e.code().name}: {e.details()} {trailing}")
                    ok = False
                self.grpc.append(time.monotonic() - start if ok else float("inf"))
                await asyncio.sleep(0.02)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[GoodClient]:
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            self.stop.set()
            async with asyncio.timeout(30):
                await task


async def test_a_rapid_reset_flood_gets_goaway_and_is_closed_with_memory_bounded() -> None:
    """HEADERS + RST_STREAM(CANCEL) pairs as fast as a socket takes them: the connection gets
    GOAWAY(ENHANCE_YOUR_CALM) within a second and is closed, the sidecar's memory stays
    within bounds, and the close is counted and logged once with the peer and the reason."""
    async with sidecar_with_upstreams() as (p, _, echo):
        assert p.proc is not None
        before = rss_mb(p.proc.pid)
        [conn] = await flood(p.grpc_port, "rapid_reset", 10)
        after = rss_mb(p.proc.pid)
        assert conn["goaway"] == ENHANCE_YOUR_CALM
        assert conn["goaway_after"] < 1.0
        assert conn["closed_by_server"]
        assert after - before < RSS_GROWTH_BOUND_MB, (before, after)
        assert flood_closed(p.admin_url, "rapid_reset") == 1
        [line] = flood_log_lines(p)
        assert line["level"] == "warning" and line["reason"] == "rapid_reset"
        assert line["client"].startswith("127.0.0.1:")
        assert line["premature_resets"] > 200
        assert echo.calls == []  # no call of the flood reached the upstream


async def test_both_ports_keep_answering_while_rapid_reset_floods_reconnect() -> None:
    """While a flooder reconnects after each GOAWAY for 3 s, a good client's calls on the HTTP
    port and the gRPC port each succeed within a second."""
    async with sidecar_with_upstreams() as (p, web, echo):
        assert p.proc is not None
        before = rss_mb(p.proc.pid)
        async with GoodClient(p).running() as good:
            conns = await flood(p.grpc_port, "rapid_reset", 3, "--reconnect")
        after = rss_mb(p.proc.pid)
    assert len(conns) > 1
    assert all(c["goaway"] == ENHANCE_YOUR_CALM for c in conns if c["closed_by_server"])
    assert sum(c["frames"] for c in conns) > 100_000
    assert len(good.http) >= 10 and len(good.grpc) >= 10
    assert max(good.http) < GOOD_CALL_BOUND, sorted(good.http)[-3:]
    assert max(good.grpc) < GOOD_CALL_BOUND, sorted(good.grpc)[-3:]
    assert after - before < RSS_GROWTH_BOUND_MB, (before, after)


async def test_one_flooding_connection_cannot_hold_the_loop_even_when_never_cut_off() -> None:
    """With flood protection off, one connection floods for 3 s unchecked: frames are handled
    a bounded batch per loop turn, so the other connections and the HTTP port are served."""
    async with sidecar_with_upstreams(flood_protection={"enabled": False}) as (p, _, _echo):
        assert p.proc is not None
        before = rss_mb(p.proc.pid)
        async with GoodClient(p).running() as good:
            [conn] = await flood(p.grpc_port, "rapid_reset", 3)
        after = rss_mb(p.proc.pid)
    assert conn["goaway"] is None and conn["frames"] > 100_000
    assert len(good.http) >= 10 and len(good.grpc) >= 10
    assert max(good.http) < GOOD_CALL_BOUND, sorted(good.http)[-3:]
    assert max(good.grpc) < GOOD_CALL_BOUND, sorted(good.grpc)[-3:]
    assert after - before < RSS_GROWTH_BOUND_MB, (before, after)


async def test_calls_reset_after_they_started_are_counted_too() -> None:
    """1000 calls opened, started (their upstream calls begun), then all reset: still a rapid
    reset; the connection gets GOAWAY(ENHANCE_YOUR_CALM) within a bound."""
    async with sidecar_with_upstreams() as (p, _, _echo):
        [conn] = await flood(p.grpc_port, "late_reset", 15)
        assert conn["goaway"] == ENHANCE_YOUR_CALM
        assert conn["goaway_after"] < 10
        assert flood_closed(p.admin_url, "rapid_reset") == 1


async def test_more_streams_than_advertised_end_the_connection_at_once() -> None:
    """With `max_concurrent_streams` lowered to 128 (untrusted local clients), a late-reset
    flooder opening 1000 calls is cut off at once (GOAWAY PROTOCOL_ERROR)."""
    async with sidecar_with_upstreams(max_concurrent_streams=128) as (p, _, _echo):
        [conn] = await flood(p.grpc_port, "late_reset", 15)
        assert conn["goaway"] == PROTOCOL_ERROR
        assert conn["goaway_after"] < 1.0 and conn["closed_by_server"]


@pytest.fixture(scope="module")
def bare_sidecar() -> Iterator[SidecarProcess]:
    """A sidecar with no upstream: the floods below need none."""
    with SidecarProcess({"grpc": {"address": "127.0.0.1:0", "server": "h2"}}) as p:
        yield p


@pytest.mark.parametrize("kind", ["ping", "settings", "empty_data", "window_update", "priority"])
async def test_a_control_frame_flood_gets_goaway(bare_sidecar: SidecarProcess, kind: str) -> None:
    """PING, SETTINGS, empty DATA, WINDOW_UPDATE or PRIORITY frames as fast as they go: GOAWAY
    (ENHANCE_YOUR_CALM) within a second, counted under the frame's kind."""
    p = bare_sidecar
    [conn] = await flood(p.grpc_port, kind, 10)
    assert conn["goaway"] == ENHANCE_YOUR_CALM
    assert conn["goaway_after"] < 1.0 and conn["closed_by_server"]
    assert flood_closed(p.admin_url, kind) == 1
    assert any(x["reason"] == kind for x in flood_log_lines(p))


async def test_an_endless_header_block_is_refused_at_its_bound(
    bare_sidecar: SidecarProcess,
) -> None:
    """CONTINUATION frames that never end their header block: once the block passes
    ``max_metadata_size`` the connection gets GOAWAY(ENHANCE_YOUR_CALM) at once, counted as a
    ``header_block`` flood."""
    [conn] = await flood(bare_sidecar.grpc_port, "continuation", 10)
    assert conn["goaway"] == ENHANCE_YOUR_CALM
    assert conn["goaway_after"] < 1.0 and conn["closed_by_server"]
    assert flood_closed(bare_sidecar.admin_url, "header_block") == 1


@pytest.mark.parametrize("max_premature_resets", [200, 5])
async def test_an_app_that_cancels_some_calls_is_never_cut_off(max_premature_resets: int) -> None:
    """200 calls, 1 in 10 cancelled by the app 20 ms after it began (before the upstream
    answered): the other 180 succeed on the same connection, nothing is counted as a flood,
    even with a floor of 5 resets (10 % of the calls stays under the 50 % share)."""
    flood_protection = {"max_premature_resets": max_premature_resets}
    async with sidecar_with_upstreams(flood_protection=flood_protection) as (p, _, echo):
        async with grpc.aio.insecure_channel(p.grpc_target) as channel:
            stub = echo_pb2_grpc.EchoStub(channel)

            async def one(i: int) -> str:
                call = stub.Unary(pb.EchoRequest(payload=b"%d" % i, delay_ms=100), timeout=10)
                if i % 10 == 0:
                    await asyncio.sleep(0.02)
                    call.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await call
                    return "cancelled"
                return "ok" if (await call).payload == b"%d" % i else "wrong"

            outcomes: list[str] = []
            for batch in range(10):
                outcomes += await asyncio.gather(*(one(batch * 20 + i) for i in range(20)))
            await stub.Unary(pb.EchoRequest(payload=b"after"), timeout=10)
        assert outcomes.count("ok") == 180 and outcomes.count("cancelled") == 20
        assert flood_log_lines(p) == []
        assert flood_closed(p.admin_url, "rapid_reset") == 0
    assert sum(1 for c in echo.calls if c.cancelled) >= 1  # the cancels reached the upstream


async def test_grpcio_server_keeps_both_ports_answering_under_rapid_reset() -> None:
    """``grpc.server: grpcio``: grpcio's core handles the same flood off the event loop (it
    sends no GOAWAY for it): the HTTP port answers within a second, gRPC calls go on (looser:
    the flood and the calls share grpcio's core, which delays some by about a second and has
    been seen to cancel one), memory stays bounded."""
    async with sidecar_with_upstreams(server="grpcio") as (p, _, _echo):
        assert p.proc is not None
        before = rss_mb(p.proc.pid)
        async with GoodClient(p).running() as good:
            conns = await flood(p.grpc_port, "rapid_reset", 3)
        after = rss_mb(p.proc.pid)
    assert sum(c["frames"] for c in conns) > 100_000
    assert len(good.http) >= 3 and len(good.grpc) >= 3
    assert max(good.http) < GOOD_CALL_BOUND, sorted(good.http)[-3:]
    answered = [t for t in good.grpc if t < float("inf")]
    assert len(answered) >= 0.8 * len(good.grpc), good.errors
    assert max(answered) < 5.0, sorted(answered)[-3:]
    assert after - before < RSS_GROWTH_BOUND_MB, (before, after)


async def test_a_request_pump_is_not_left_waiting_when_the_answer_ends_first() -> None:
    """A bidi call the upstream fails while the app keeps its request stream open: once the
    answer is written, the task that forwards the app's messages ends too (it used to wait
    for the app's next message until collected, pinning memory per call)."""
    async with EchoUpstream() as up:
        cfg = {
            "upstreams": {"echo": {"adapter": "grpc", "url": up.url, "services": [SERVICE]}},
            "grpc": {"address": "127.0.0.1:0", "server": "h2"},
        }
        async with (
            running_sidecar(cfg) as s,
            grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc_port}") as channel,
        ):
            open_forever = asyncio.Event()

            async def requests() -> AsyncIterator[pb.EchoRequest]:
                yield pb.EchoRequest(fail_code=9, fail_details="no")  # FAILED_PRECONDITION
                await open_forever.wait()

            call = echo_pb2_grpc.EchoStub(channel).Bidi(requests(), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in call:
                    pass
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

            def pumps() -> int:
                # a compiled build's coroutines have no __qualname__ (this one is Python)
                coros = (t.get_coro() for t in asyncio.all_tasks())
                return sum(1 for c in coros if getattr(c, "__qualname__", "") == "_send")

            await async_wait_until(lambda: pumps() == 0, limit=5)
            open_forever.set()
