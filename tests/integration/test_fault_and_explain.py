"""Fault injection through a running sidecar (HTTP and gRPC ports), and ``/explain`` on its
admin port: the chain, who registered each filter, where each setting came from, no secrets."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from sidecar import FilterRegistry, Phase, RouteContext, hookimpl
from sidecar.api import ConfigRegistry
from sidecar.exchange import Exchange, Response
from sidecar.testing import FakeUpstream, running_sidecar
from tests.grpc_echo import echo_pb2, echo_pb2_grpc
from tests.integration.grpc_servers import grpc_server  # noqa: F401 - the fixture

from .grpc_upstream import SERVICE, EchoUpstream

WAIT = 10.0
TOKEN = "tok-5ecret-never-shown"


class Stamp(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    value: str = "stamped"
    header: str = "x-stamp"


class StampPlugin:
    """A plugin with a config section and a filter adding a response header."""

    name = "stamp"

    @hookimpl
    def sidecar_declare_config(self, registry: ConfigRegistry) -> None:
        registry.add("stamp", Stamp)

    @hookimpl
    def sidecar_register_filters(self, registry: FilterRegistry) -> None:
        def factory(ctx: RouteContext) -> Any:
            stamp = ctx.plugin_config("stamp", Stamp)

            async def add(exchange: Exchange, call_next: Any) -> Response:
                resp: Response = await call_next(exchange)
                resp.headers.add(stamp.header, stamp.value)
                return resp

            return add

        registry.add("stamp", factory, phase=Phase.EXTEND)


def http_config(url: str) -> dict[str, Any]:
    return {
        "upstreams": {
            "pay": {
                "url": url,
                "retry": {"attempts": 3, "backoff": {"base": "40ms"}},
                "auth": {"type": "bearer", "token": {"env": "FAULT_TEST_TOKEN"}},
                "fault": {"header_triggered": True, "header_max_delay": "1s"},
            }
        },
        "routes": [
            {
                "name": "broken",
                "match": {"path_prefix": "/broken"},
                "upstream": "pay",
                "retry": {"attempts": 2},
                "fault": {"abort": {"status": 502}},
            }
        ],
        "plugins": {"stamp": {"value": "hi"}},
    }


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULT_TEST_TOKEN", TOKEN)


@pytest.mark.usefixtures("token")
async def test_faults_on_the_http_port_configured_and_header_triggered() -> None:
    """A route's abort and an app's header-chosen faults reach the app as sidecar decisions,
    are counted, and the fault headers never reach the upstream."""
    async with (
        FakeUpstream() as up,
        running_sidecar(http_config(up.url), plugins=[StampPlugin()]) as s,
        httpx.AsyncClient(timeout=WAIT) as c,
    ):
        base = f"http://127.0.0.1:{s.http_port}"
        r = await c.get(f"{base}/broken/x")
        assert (r.status_code, r.headers.get("x-sidecar-error")) == (502, "fault_injected")
        r = await c.get(f"{base}/pay/x", headers={"x-sidecar-fault-abort-status": "418"})
        assert (r.status_code, r.headers.get("x-sidecar-error")) == (418, "fault_injected")
        assert up.requests == []  # neither abort called the upstream, nor was retried
        r = await c.get(f"{base}/pay/x", headers={"x-sidecar-fault-delay-ms": "30"})
        assert r.status_code == 200
        assert len(up.requests) == 1
        assert not any(k.lower().startswith("x-sidecar-fault") for k in up.requests[0].headers)
        r = await c.get(f"{base}/pay/x", headers={"x-sidecar-fault-delay-ms": "2000"})
        assert (r.status_code, r.headers.get("x-sidecar-error")) == (400, "bad_request")
        metrics = (await c.get(f"http://127.0.0.1:{s.admin_port}/metrics")).text
        assert 'sidecar_faults_injected_total{kind="abort",route="broken",upstream="pay"} 1.0' in (
            metrics
        )
        assert 'sidecar_faults_injected_total{kind="delay",route="pay",upstream="pay"} 1.0' in (
            metrics
        )
        errors = 'sidecar_errors_total{listener="http",reason="fault_injected",upstream="pay"} 2.0'
        assert errors in metrics  # counted as what the app got, like every sidecar decision
        upstreams = (await c.get(f"http://127.0.0.1:{s.admin_port}/upstreams")).json()
        assert upstreams["pay"]["policies"]["fault"] == {"active": 0}  # none held now


@pytest.mark.usefixtures("grpc_server")
async def test_faults_on_the_grpc_port_are_grpc_statuses() -> None:
    """On the gRPC port an injected abort is a gRPC status with x-sidecar-error in trailers,
    configured or asked for in the app's metadata."""
    async with EchoUpstream() as up:
        fault = {"abort": {"status": 503, "percent": 0}, "header_triggered": True}
        config = {
            "upstreams": {
                "echo": {"adapter": "grpc", "url": up.url, "services": [SERVICE], "fault": fault}
            }
        }
        async with (
            running_sidecar(config) as s,
            grpc.aio.insecure_channel(f"127.0.0.1:{s.grpc.port if s.grpc else 0}") as channel,
        ):
            stub = echo_pb2_grpc.EchoStub(channel)
            reply = await stub.Unary(echo_pb2.EchoRequest(payload=b"ok"), timeout=WAIT)
            assert reply.payload == b"ok"  # percent 0: never by config
            asked = (("x-sidecar-fault-abort-status", "503"),)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Unary(echo_pb2.EchoRequest(payload=b"x"), timeout=WAIT, metadata=asked)
            error = raised.value
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert dict(error.trailing_metadata() or ()).get("x-sidecar-error") == "fault_injected"
            assert len(up.calls) == 1


@pytest.mark.usefixtures("token")
async def test_explain_shows_the_chain_with_each_settings_source_and_no_secret() -> None:
    """An operator sees, per filter, who registered it and whether each setting came from the
    route, the upstream, a plugin section or the default; the token never appears."""
    async with (
        FakeUpstream() as up,
        running_sidecar(http_config(up.url), plugins=[StampPlugin()]) as s,
        httpx.AsyncClient(timeout=WAIT) as c,
    ):
        admin = f"http://127.0.0.1:{s.admin_port}"
        r = await c.get(f"{admin}/explain", params={"route": "broken"})
        assert r.status_code == 200
        answer = r.json()
        by = {f["name"]: f for f in answer["filters"]}
        assert list(by).index("stamp") < list(by).index("timeout") < list(by).index("fault")
        assert list(by).index("fault") < list(by).index("retry") < list(by).index("auth")
        assert by["retry"]["sources"]["retry.attempts"] == "route"
        assert by["retry"]["sources"]["retry.backoff.base"] == "default"  # replaced whole
        assert by["fault"]["sources"]["fault.abort.status"] == "route"
        assert by["auth"]["sources"]["auth.token"] == "upstream"
        assert by["auth"]["settings"]["auth"]["token"] == {"env": "FAULT_TEST_TOKEN"}
        assert by["circuit_breaker"]["sources"]["circuit_breaker.open_for"] == "default"
        stamp = by["stamp"]
        assert (stamp["registered_by"], stamp["phase"]) == ("stamp", "extend")
        assert stamp["sources"] == {
            "plugins.stamp.value": "plugin",
            "plugins.stamp.header": "default",
        }
        assert by["retry"]["registered_by"] == "core"
        assert TOKEN not in r.text
        # the upstream's own route: its retry, its fault
        r = await c.get(f"{admin}/explain", params={"upstream": "pay"})
        by = {f["name"]: f for f in r.json()["filters"]}
        assert by["retry"]["sources"]["retry.backoff.base"] == "upstream"
        assert by["fault"]["settings"]["fault"]["header_triggered"] is True
        text = (await c.get(f"{admin}/explain", params={"route": "broken", "format": "text"})).text
        assert "retry.attempts" in text and "plugins.stamp.value" in text
        assert TOKEN not in text
        for params, status in [
            ({"route": "nope"}, 404),
            ({"upstream": "nope"}, 404),
            ({}, 400),
            ({"route": "broken", "upstream": "pay"}, 400),
        ]:
            r = await c.get(f"{admin}/explain", params=params)
            assert r.status_code == status, params
            assert r.json()["error"]
