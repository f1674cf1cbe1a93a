"""A front written by a plugin, on the public API only: a one-line text protocol on its own port.

``LINE <upstream> <path>`` asks the sidecar to call ``GET <path>`` on the upstream through the
same filter chain the HTTP port uses (metrics, access log, retry...), and the front answers
``<status> <x-sidecar-error or ok>``. Nothing in the sidecar names this front: it is registered
through ``sidecar_register_fronts`` and composes its routes with the route builder, so it picks
up a reload and drains on shutdown like the built-in ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

import pytest

from sidecar import (
    Exchange,
    FrontContext,
    FrontRegistry,
    FrontTraits,
    Handler,
    Headers,
    RouteBuilder,
    SidecarError,
    hookimpl,
)
from sidecar.api.fronts import AppActivity
from sidecar.testing import FakeUpstream, async_wait_until, running_sidecar

pytestmark = pytest.mark.integration

TRAITS = FrontTraits("lines")


class LineFront:
    """The plugin's front: one TCP server, one route per upstream."""

    traits = TRAITS
    faces: Literal["app", "peers"] = "app"

    def __init__(self, ctx: FrontContext) -> None:
        self.ctx = ctx
        self.routes: dict[str, Handler] = {}
        self.server: asyncio.base_events.Server | None = None
        self.in_flight = 0
        self.began = 0

    def compose(self, builder: RouteBuilder) -> dict[str, Handler]:
        return {
            name: builder.chain(self.traits, name, name, builder.terminal(name))
            for name in builder.config.upstreams
        }

    def swap(self, routes: dict[str, Handler]) -> None:
        self.routes = routes

    def upstreams(self, routes: dict[str, Handler]) -> Mapping[str, Any]:
        return {}

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.began += 1
        self.in_flight += 1
        try:
            line = (await reader.readline()).decode().split()
            route = self.routes.get(line[1]) if len(line) == 3 else None
            if route is None:
                answer = "404 no_route"
            else:
                exchange = Exchange("GET", line[2], Headers(), listener=TRAITS.name)
                try:
                    resp = await route(exchange)
                    answer = f"{resp.status} {resp.headers.get('x-sidecar-error') or 'ok'}"
                except SidecarError as e:  # the chain's rescue answers; this is belt and braces
                    answer = f"{e.status} {e.code}"
            writer.write(answer.encode() + b"\n")
            await writer.drain()
        finally:
            self.in_flight -= 1
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def hold_for_app(self) -> None:
        pass

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    async def drain(self, grace: float) -> int:
        return 0

    def app_activity(self) -> AppActivity:
        return AppActivity(0, self.in_flight, self.began)


class LinePlugin:
    name = "lines"

    @hookimpl
    def sidecar_register_fronts(self, registry: FrontRegistry) -> None:
        registry.add("lines", LineFront)


async def ask(port: int, line: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(line.encode() + b"\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return answer.decode().strip()


async def test_a_plugin_front_serves_calls_through_the_same_chain_as_the_http_port(
    fake_upstream: FakeUpstream,
) -> None:
    """Its calls reach the upstream, are counted under its name, and a refusal is the chain's."""
    config = {
        "upstreams": {
            "pay": {"url": fake_upstream.url},
            "limited": {
                "url": fake_upstream.url,
                "rate_limit": {"rate": "1/min", "burst": 1},
            },
        }
    }
    async with running_sidecar(config, plugins=[LinePlugin()]) as s:
        front = s.fronts["lines"].inner  # the plugin's own object (the sidecar guards it)
        assert isinstance(front, LineFront)
        assert await ask(front.port, "LINE pay /charge") == "200 ok"
        assert fake_upstream.requests[-1].path_qs == "/charge"
        assert await ask(front.port, "LINE limited /x") == "200 ok"
        assert await ask(front.port, "LINE limited /x") == "429 rate_limited"
        assert await ask(front.port, "LINE nowhere /x") == "404 no_route"
        sample = s.metrics.registry.get_sample_value(
            "sidecar_requests_total",
            {"listener": "lines", "upstream": "pay", "route": "pay", "code": "200"},
        )
        assert sample == 1.0


async def test_a_plugin_front_takes_the_new_routes_on_reload_and_stops_on_drain(
    fake_upstream: FakeUpstream, tmp_path: Any
) -> None:
    """A reload adding an upstream reaches the plugin's front; the drain closes its port."""
    path = tmp_path / "sidecar.yaml"
    base = (
        "admin: {address: '127.0.0.1:0'}\nhttp: {address: '127.0.0.1:0'}\ngrpc: {enabled: false}\n"
    )
    path.write_text(base + f"upstreams:\n  pay: {{url: '{fake_upstream.url}'}}\n")
    async with running_sidecar(
        path.read_text(), plugins=[LinePlugin()], config_path=str(path)
    ) as s:
        front = s.fronts["lines"].inner  # the plugin's own object (the sidecar guards it)
        assert isinstance(front, LineFront)
        port = front.port
        assert await ask(port, "LINE ledger /x") == "404 no_route"
        path.write_text(
            base
            + f"upstreams:\n  pay: {{url: '{fake_upstream.url}'}}\n"
            + f"  ledger: {{url: '{fake_upstream.url}'}}\n"
        )
        assert (await s.reload_result()).applied
        assert await ask(port, "LINE ledger /x") == "200 ok"
    await async_wait_until(lambda: front.server is not None and not front.server.is_serving())
    with pytest.raises(OSError):
        await ask(port, "LINE pay /x")
