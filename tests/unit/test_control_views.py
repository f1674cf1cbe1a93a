"""The control plane reads the running sidecar only through its read-only views: the admin
routes, the metrics port's answers and the gRPC admin API work on a small fake (no sockets)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp.test_utils import make_mocked_request

from sidecar import admin_routes
from sidecar.admin import AdminServer, misdirected_requests
from sidecar.api import ControlView, PluginInfo, RuntimeView
from sidecar.config import SidecarConfig, parse_config
from sidecar.grpc.admin_api import listeners
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import isolated_plugin_host

CONFIG = parse_config(
    "admin: {address: '127.0.0.1:0'}\nhttp: {address: 'localhost:0'}\n"
    "grpc: {address: '127.0.0.1:0'}\n",
    "<test>",
)


@dataclass
class FakeSidecar:
    """The members of a ControlView these readers use, nothing else."""

    state: str = "ready"
    config: SidecarConfig = CONFIG
    metrics: Metrics = field(default_factory=Metrics)
    resources: dict[str, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def plugins(self) -> list[PluginInfo]:
        return [PluginInfo("hello", "in-process", ["filter hello (order 500)"])]


def control(fake: FakeSidecar) -> ControlView:
    return cast(ControlView, fake)


def runtime(fake: FakeSidecar) -> RuntimeView:
    return cast(RuntimeView, fake)


def test_readiness_and_metrics_answers_need_only_the_runtime_view() -> None:
    """The metrics port (a lifespan) serves the admin port's very probe answers."""
    fake = FakeSidecar(state="draining")
    assert admin_routes.readyz_answer(runtime(fake)).status == 503
    assert admin_routes.healthz_answer(runtime(fake)).status == 200
    fake.state = "ready"
    assert admin_routes.readyz_answer(runtime(fake)).status == 200
    body = admin_routes.metrics_answer(runtime(fake)).body
    assert isinstance(body, bytes) and b"sidecar_" in body


async def test_admin_handlers_read_the_sidecar_through_its_control_view() -> None:
    """`/plugins` on the admin port lists what the view says was loaded."""
    fake = FakeSidecar()
    routes = isolated_plugin_host().registries.admin_routes
    server = AdminServer(control(fake), routes)
    request = make_mocked_request("GET", "/plugins", app=server.app)
    response = await admin_routes.plugins(request)
    assert isinstance(response.body, bytes)
    assert json.loads(response.body)[0]["name"] == "hello"


def test_both_control_ports_count_refused_hosts_in_one_family() -> None:
    """Whichever port comes up first makes the count; the other reuses it (no duplicate)."""
    fake = FakeSidecar()
    first = misdirected_requests(runtime(fake))
    assert misdirected_requests(runtime(fake)) is first
    AdminServer(control(fake), isolated_plugin_host().registries.admin_routes)
    assert misdirected_requests(runtime(fake)) is first


def test_grpc_status_lists_the_bound_ports_in_a_fixed_order() -> None:
    """GetStatus names each listening port at its configured host, unbound ones left out."""
    fake = FakeSidecar(ports={"http": 15001, "admin": 15000})
    assert listeners(control(fake)) == [("admin", "127.0.0.1:15000"), ("http", "localhost:15001")]
