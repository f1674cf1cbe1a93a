"""``grpc.health.v1.Health`` on the sidecar's gRPC port, driven by a real grpc client: the overall
status and one entry per upstream (and per gRPC service it serves) follow the upstream's circuit
breaker, a reload, and the drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.app import Sidecar
from sidecar.testing import FakeUpstream, running_sidecar
from tests.grpc_echo import echo_pb2, echo_pb2_grpc
from tests.integration.grpc_servers import grpc_server  # noqa: F401 - the fixture

from .grpc_upstream import SERVICE, EchoUpstream
from .sidecar_grpc import own_services
from .test_circuit_breaker import Switchable, call_until

#: every test here runs against both servers of the gRPC port (grpc.server: grpcio, h2)
pytestmark = pytest.mark.usefixtures("grpc_server")

#: every wait on a condition is bounded by this (seconds).
WAIT = 10.0

Status = health_pb2.HealthCheckResponse
SERVING, NOT_SERVING = Status.SERVING, Status.NOT_SERVING
UNKNOWN, SERVICE_UNKNOWN = Status.UNKNOWN, Status.SERVICE_UNKNOWN
LISTENERS = {
    "admin": {"address": "127.0.0.1:0"},
    "http": {"address": "127.0.0.1:0"},
    "grpc": {"address": "127.0.0.1:0"},
}


@asynccontextmanager
async def health_client(s: Sidecar) -> AsyncIterator[Any]:
    async with own_services(s) as target, grpc.aio.insecure_channel(target) as channel:
        yield health_pb2_grpc.HealthStub(channel)


async def check(stub: Any, service: str) -> int:
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=WAIT)
    status: int = reply.status
    return status


async def next_status(watch: Any) -> int:
    """The next status a Watch stream sends. Read as an async iterator, not with ``read()``:
    grpcio's ``read()`` raises the call's final status as soon as it has arrived, dropping a
    message received before it (a NOT_SERVING sent just before the drain ends the stream)."""
    async with asyncio.timeout(WAIT):
        try:
            reply = await anext(aiter(watch))
        except StopAsyncIteration:
            raise AssertionError("the Watch stream ended") from None
    status: int = reply.status
    return status


async def test_check_answers_overall_per_upstream_and_per_grpc_service() -> None:
    """A client asks about the sidecar, an upstream by name, or the gRPC service it calls."""
    async with FakeUpstream() as up, EchoUpstream() as echo:
        cfg = {
            **LISTENERS,
            "upstreams": {
                "pay": {"url": up.url},
                "echo": {"adapter": "grpc", "url": echo.url, "services": [SERVICE, "echo.v1.Two"]},
                # no breaker and an adapter that does not track connectivity: nothing is known
                "blind": {"url": up.url, "circuit_breaker": {"enabled": False}},
            },
        }
        async with running_sidecar(cfg) as s, health_client(s) as stub:
            assert await check(stub, "") == SERVING
            assert await check(stub, "pay") == SERVING
            assert await check(stub, "echo") == SERVING
            assert await check(stub, SERVICE) == SERVING
            assert await check(stub, "echo.v1.Two") == SERVING
            assert await check(stub, "blind") == UNKNOWN
            assert await check(stub, "sidecar.v1.Admin") == SERVING
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await check(stub, "inventory.v1.Inventory")
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            assert "upstreams.<name>.services" in (e.value.details() or "")

            listed = await stub.List(health_pb2.HealthListRequest(), timeout=WAIT)
            assert {k: v.status for k, v in listed.statuses.items()} == {
                "": SERVING,
                "sidecar.v1.Admin": SERVING,
                "pay": SERVING,
                "echo": SERVING,
                SERVICE: SERVING,
                "echo.v1.Two": SERVING,
                "blind": UNKNOWN,
            }


async def test_watch_sees_an_http_upstream_go_down_and_come_back() -> None:
    """An app watching an upstream learns when its breaker opens, and when it closes again."""
    sick = Switchable()
    sick.healthy = True
    async with FakeUpstream(sick) as up, FakeUpstream() as other:
        cfg = {
            **LISTENERS,
            "upstreams": {
                "pay": {
                    "url": up.url,
                    "retry": {"enabled": False},
                    "circuit_breaker": {"consecutive_failures": 2, "open_for": "200ms"},
                },
                "other": {"url": other.url},
            },
        }
        async with (
            running_sidecar(cfg) as s,
            health_client(s) as stub,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
        ):
            watch = stub.Watch(health_pb2.HealthCheckRequest(service="pay"))
            assert await next_status(watch) == SERVING

            sick.healthy = False
            for _ in range(2):
                assert (await c.get("/pay/charge")).status_code == 503
            assert await next_status(watch) == NOT_SERVING
            assert await check(stub, "pay") == NOT_SERVING
            # one upstream down is not the sidecar down, nor the other upstreams
            assert await check(stub, "") == SERVING
            assert await check(stub, "other") == SERVING

            sick.healthy = True
            await call_until(c, "/pay/charge", 200)  # the half-open trial succeeds
            assert await next_status(watch) == SERVING
            assert await check(stub, "pay") == SERVING
            watch.cancel()


async def test_watch_sees_a_grpc_upstream_go_down_and_come_back() -> None:
    """An app watching the gRPC service it calls through the sidecar sees it fail and recover."""
    async with EchoUpstream() as up:
        cfg = {
            **LISTENERS,
            "upstreams": {
                "echo": {
                    "adapter": "grpc",
                    "url": up.url,
                    "services": [SERVICE],
                    "retry": {"enabled": False},
                    "circuit_breaker": {"consecutive_failures": 2, "open_for": "200ms"},
                }
            },
        }
        async with (
            running_sidecar(cfg) as s,
            own_services(s) as target,
            grpc.aio.insecure_channel(target) as channel,
        ):
            stub = health_pb2_grpc.HealthStub(channel)
            echo = echo_pb2_grpc.EchoStub(channel)  # the same port: health and the proxy
            watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE))
            assert await next_status(watch) == SERVING

            up.fail_next = [grpc.StatusCode.UNAVAILABLE.value[0]] * 2
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await echo.Unary(echo_pb2.EchoRequest(payload=b"x"), timeout=WAIT)
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
            assert await next_status(watch) == NOT_SERVING
            assert await check(stub, "echo") == NOT_SERVING
            assert await check(stub, "") == SERVING

            async with asyncio.timeout(WAIT):  # open for 0.2 s, then one trial call succeeds
                while True:
                    try:
                        await echo.Unary(echo_pb2.EchoRequest(payload=b"x"), timeout=WAIT)
                        break
                    except grpc.aio.AioRpcError as refused:
                        assert refused.code() == grpc.StatusCode.UNAVAILABLE
                        await asyncio.sleep(0.02)
            assert await next_status(watch) == SERVING
            watch.cancel()


async def test_a_grpc_upstream_that_cannot_be_reached_is_not_serving() -> None:
    """Without a breaker, the channel's connectivity alone says the upstream is down."""
    up = await EchoUpstream().start()
    try:
        cfg = {
            **LISTENERS,
            "upstreams": {
                "echo": {
                    "adapter": "grpc",
                    "url": up.url,
                    "services": [SERVICE],
                    "retry": {"enabled": False},
                    "circuit_breaker": {"enabled": False},
                }
            },
        }
        async with (
            running_sidecar(cfg) as s,
            own_services(s) as target,
            grpc.aio.insecure_channel(target) as channel,
        ):
            stub = health_pb2_grpc.HealthStub(channel)
            echo = echo_pb2_grpc.EchoStub(channel)
            await echo.Unary(echo_pb2.EchoRequest(payload=b"x"), timeout=WAIT)
            assert await check(stub, SERVICE) == SERVING  # its channel is connected

            await up.stop()
            with pytest.raises(grpc.aio.AioRpcError):  # the channel tries, and fails, to connect
                await echo.Unary(echo_pb2.EchoRequest(payload=b"x"), timeout=WAIT)
            watch = stub.Watch(health_pb2.HealthCheckRequest(service=SERVICE))
            async with asyncio.timeout(WAIT):
                while await next_status(watch) != NOT_SERVING:
                    pass
            watch.cancel()
    finally:
        await up.stop()


async def test_an_upstream_removed_by_a_reload_goes_away(tmp_path: Path) -> None:
    """After a reload drops an upstream, its watchers hear SERVICE_UNKNOWN and Check NOT_FOUND."""
    async with FakeUpstream() as up:
        path = tmp_path / "sidecar.yaml"
        both = {**LISTENERS, "upstreams": {"pay": {"url": up.url}, "gone": {"url": up.url}}}
        path.write_text(yaml.safe_dump(both))
        async with (
            running_sidecar(path.read_text(), config_path=str(path)) as s,
            health_client(s) as stub,
        ):
            watch = stub.Watch(health_pb2.HealthCheckRequest(service="gone"))
            assert await next_status(watch) == SERVING

            path.write_text(yaml.safe_dump({**LISTENERS, "upstreams": {"pay": {"url": up.url}}}))
            assert await s.reload()
            assert await next_status(watch) == SERVICE_UNKNOWN
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await check(stub, "gone")
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            assert await check(stub, "pay") == SERVING
            watch.cancel()


async def test_everything_is_not_serving_while_draining_and_watches_end() -> None:
    """On SIGTERM watchers hear NOT_SERVING at once, and their streams end (not hold the drain)."""
    async with FakeUpstream() as up:
        cfg = {
            **LISTENERS,
            "shutdown": {"drain_timeout": "60s"},  # far longer than the test waits
            "upstreams": {"pay": {"url": up.url}},
        }
        async with running_sidecar(cfg) as s, health_client(s) as stub:
            overall = stub.Watch(health_pb2.HealthCheckRequest(service=""))
            pay = stub.Watch(health_pb2.HealthCheckRequest(service="pay"))
            assert await next_status(overall) == SERVING
            assert await next_status(pay) == SERVING

            drained = asyncio.create_task(s.drain())
            assert await next_status(overall) == NOT_SERVING
            assert await next_status(pay) == NOT_SERVING
            for watch in (overall, pay):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    async with asyncio.timeout(WAIT):
                        await anext(aiter(watch))
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE
                assert e.value.details() == "the sidecar is draining"
            async with asyncio.timeout(WAIT):
                await drained
