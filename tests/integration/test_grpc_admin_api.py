"""``sidecar.v1.Admin`` and server reflection on the sidecar's gRPC port, called by a real grpc
client: status, upstreams with their live policy state, and config reload (taken or refused)."""

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
from aiohttp import web
from google.protobuf import descriptor_pb2
from google.protobuf.json_format import MessageToDict
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import sidecar
from sidecar.app import Sidecar
from sidecar.config import DEFAULT_CONFIG_NAME
from sidecar.testing import FakeUpstream, running_sidecar
from sidecar.v1 import admin_pb2, admin_pb2_grpc
from tests.integration.grpc_servers import grpc_server  # noqa: F401 - the fixture

from .grpc_upstream import SERVICE, EchoUpstream
from .sidecar_grpc import own_services
from .test_circuit_breaker import Switchable

#: every test here runs against both servers of the gRPC port (grpc.server: grpcio, h2)
pytestmark = pytest.mark.usefixtures("grpc_server")

#: every wait on a condition is bounded by this (seconds).
WAIT = 10.0

LISTENERS = {
    "admin": {"address": "127.0.0.1:0"},
    "http": {"address": "127.0.0.1:0"},
    "grpc": {"address": "127.0.0.1:0"},
}
Breaker = admin_pb2.CircuitBreaker


@asynccontextmanager
async def admin_client(s: Sidecar) -> AsyncIterator[Any]:
    async with own_services(s) as target, grpc.aio.insecure_channel(target) as channel:
        yield admin_pb2_grpc.AdminStub(channel)


async def upstreams(stub: Any) -> dict[str, Any]:
    reply = await stub.ListUpstreams(admin_pb2.ListUpstreamsRequest(), timeout=WAIT)
    return {u.name: u for u in reply.upstreams}


async def test_get_status_says_version_state_config_and_ports(tmp_path: Path) -> None:
    """An operator learns which sidecar runs, on which config file, listening where."""
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({**LISTENERS, "upstreams": {}}))
    async with (
        running_sidecar(path.read_text(), config_path=str(path)) as s,
        admin_client(s) as stub,
    ):
        status = await stub.GetStatus(admin_pb2.GetStatusRequest(), timeout=WAIT)
        assert status.version == sidecar.__version__
        assert status.state == admin_pb2.STATE_READY
        assert 0 <= status.uptime_seconds < 60
        assert status.config_file == str(path)
        ports = {x.name: x.address for x in status.listeners}
        assert ports["admin"] == f"127.0.0.1:{s.admin_port}"
        assert ports["http"] == f"127.0.0.1:{s.http_port}"
        assert s.grpc is not None and ports["grpc"] == f"127.0.0.1:{s.grpc.port}"
        assert "inbound" not in ports  # not configured
        later = await stub.GetStatus(admin_pb2.GetStatusRequest(), timeout=WAIT)
        assert later.uptime_seconds >= status.uptime_seconds

    async with running_sidecar({**LISTENERS}) as s, admin_client(s) as stub:
        status = await stub.GetStatus(admin_pb2.GetStatusRequest(), timeout=WAIT)
        assert status.config_file == DEFAULT_CONFIG_NAME


async def test_list_upstreams_shows_health_and_live_policy_state() -> None:
    """The breaker's state, the calls in flight and the rate limits are what the sidecar holds."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="ok")

    sick = Switchable()
    async with FakeUpstream(sick) as bad, FakeUpstream(slow) as busy, EchoUpstream() as echo:
        cfg = {
            **LISTENERS,
            "upstreams": {
                "echo": {"adapter": "grpc", "url": echo.url, "services": [SERVICE]},
                "pay": {
                    "url": bad.url,
                    "timeout": "2s",
                    "retry": {"enabled": False},
                    "circuit_breaker": {"consecutive_failures": 2, "open_for": "30s"},
                    "rate_limit": {"rate": "100/s", "burst": 20},
                },
                "busy": {"url": busy.url, "concurrency": {"max_in_flight": 8}},
            },
        }
        async with (
            running_sidecar(cfg) as s,
            admin_client(s) as stub,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
        ):
            shown = await upstreams(stub)
            assert list(shown) == list(s.config.upstreams)  # config order
            assert (shown["echo"].adapter, list(shown["echo"].services)) == ("grpc", [SERVICE])
            pay = shown["pay"]
            assert (pay.adapter, pay.url, list(pay.services)) == ("http", bad.url, [])
            assert pay.timeout_seconds == 2.0
            assert pay.health == admin_pb2.HEALTH_HEALTHY
            assert pay.circuit_breaker.state == Breaker.STATE_CLOSED
            assert (pay.circuit_breaker.trip_after, pay.circuit_breaker.open_for_seconds) == (2, 30)
            [limit] = pay.rate_limits
            assert (limit.scope, limit.rate, limit.burst, limit.on_limit) == (
                "rate_limit",
                "100/s",
                20,
                "reject",
            )
            assert not limit.is_global
            # the whole /upstreams entry rides along as JSON
            details = MessageToDict(pay.details)
            assert details == s.describe_upstreams()["pay"]

            for _ in range(2):
                assert (await c.get("/pay/charge")).status_code == 503
            pay = (await upstreams(stub))["pay"]
            assert pay.health == admin_pb2.HEALTH_UNHEALTHY
            assert pay.circuit_breaker.state == Breaker.STATE_OPEN
            assert 25 < pay.circuit_breaker.half_open_in_seconds <= 30

            call = asyncio.create_task(c.get("/busy/wait"))
            seen: list[int] = []

            async def in_flight() -> int:
                n: int = (await upstreams(stub))["busy"].concurrency.in_flight
                seen.append(n)
                return n

            async with asyncio.timeout(WAIT):
                while await in_flight() != 1:
                    await asyncio.sleep(0.02)
            assert (await upstreams(stub))["busy"].concurrency.max_in_flight == 8
            release.set()
            assert (await call).status_code == 200
            assert await in_flight() == 0


async def test_reload_applies_a_valid_config_and_reports_restart_only_keys(tmp_path: Path) -> None:
    """A reload over gRPC takes a new upstream at once and says which changes wait for a restart."""
    async with FakeUpstream() as up:
        path = tmp_path / "sidecar.yaml"
        path.write_text(yaml.safe_dump({**LISTENERS, "upstreams": {"pay": {"url": up.url}}}))
        async with (
            running_sidecar(path.read_text(), config_path=str(path)) as s,
            admin_client(s) as stub,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.http_port}", timeout=WAIT) as c,
        ):
            assert (await c.get("/extra/")).status_code == 404
            new = {
                **LISTENERS,
                "http": {"address": "127.0.0.1:1"},  # a listener address: restart only
                # the gRPC port's server as running (the grpc_server parameter)
                "grpc": {**LISTENERS["grpc"], "server": s.config.grpc.server},
                "upstreams": {"pay": {"url": up.url}, "extra": {"url": up.url}},
            }
            path.write_text(yaml.safe_dump(new, sort_keys=False))
            reply = await stub.Reload(admin_pb2.ReloadRequest(), timeout=WAIT)
            assert reply.applied
            assert list(reply.problems) == []
            assert list(reply.restart_required) == ["http.address"]
            assert list(await upstreams(stub)) == ["pay", "extra"]
            assert (await c.get("/extra/")).status_code == 200  # same port: the old address


async def test_reload_refuses_a_bad_config_and_says_why(tmp_path: Path) -> None:
    """A broken file is refused with the file, key and reason; the old config keeps serving."""
    async with FakeUpstream() as up:
        path = tmp_path / "sidecar.yaml"
        path.write_text(yaml.safe_dump({**LISTENERS, "upstreams": {"pay": {"url": up.url}}}))
        async with (
            running_sidecar(path.read_text(), config_path=str(path)) as s,
            admin_client(s) as stub,
        ):
            bad = {**LISTENERS, "upstreams": {"pay": {"url": up.url, "timeout": "soon"}}}
            path.write_text(yaml.safe_dump(bad))
            reply = await stub.Reload(admin_pb2.ReloadRequest(), timeout=WAIT)
            assert not reply.applied
            [problem] = reply.problems
            assert problem.startswith(f"{path}: upstreams.pay.timeout: "), problem
            assert (await upstreams(stub))["pay"].timeout_seconds == 15.0  # still the old one
            reloads = s.metrics.registry.get_sample_value(
                "sidecar_config_reloads_total", {"result": "refused"}
            )
            assert reloads == 1.0

    async with running_sidecar({**LISTENERS}) as s, admin_client(s) as stub:
        reply = await stub.Reload(admin_pb2.ReloadRequest(), timeout=WAIT)
        assert not reply.applied
        assert ["embedded default" in p for p in reply.problems] == [True]


async def test_reflection_lists_and_describes_the_sidecars_own_services() -> None:
    """grpcurl and friends find the health, admin and reflection services and their schemas."""
    async with (
        running_sidecar({**LISTENERS}) as s,
        own_services(s) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        asks = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="sidecar.v1.Admin"),
        ]
        async with asyncio.timeout(WAIT):
            answers = [a async for a in stub.ServerReflectionInfo(iter(asks))]
        listed = {x.name for x in answers[0].list_services_response.service}
        assert listed == {
            "grpc.health.v1.Health",
            "sidecar.v1.Admin",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        files = answers[1].file_descriptor_response.file_descriptor_proto
        admin = descriptor_pb2.FileDescriptorProto.FromString(files[0])
        assert admin.name == "sidecar/v1/admin.proto"
        assert [m.name for m in admin.service[0].method] == ["GetStatus", "ListUpstreams", "Reload"]


async def test_reflection_answers_under_its_v1_name_too() -> None:
    """Clients that ask ``grpc.reflection.v1`` first (newer grpcurl) get the same listing."""
    async with (
        running_sidecar({**LISTENERS}) as s,
        own_services(s) as target,
        grpc.aio.insecure_channel(target) as channel,
    ):
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        async with asyncio.timeout(WAIT):
            answers = [a async for a in info(iter([reflection_pb2.ServerReflectionRequest()]))]
            listed = [
                a
                async for a in info(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])
                )
            ]
        assert answers[0].error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        names = {x.name for x in listed[0].list_services_response.service}
        assert "sidecar.v1.Admin" in names
