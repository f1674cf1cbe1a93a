"""Composition: a config's routes are built aside and go live whole, or not at all."""

from __future__ import annotations

from sidecar import Filter, RouteContext
from sidecar.app import Sidecar
from sidecar.listeners.http import HTTP_FRONT
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, responder


def sidecar_with(*plugins: object) -> Sidecar:
    url = {"url": "http://127.0.0.1:9"}
    config = make_route_context(config={"upstreams": {"pay": url}}, name="pay").config
    s = Sidecar(config, plugin_host=isolated_plugin_host(*plugins))
    s._build_adapters()
    return s


async def test_what_a_front_publishes_reaches_this_compositions_filters_only() -> None:
    """A published resource is seen by the filters being composed, not by the running sidecar
    until the composition goes live (a refused reload leaves the running one alone)."""
    seen: list[object] = []

    class Reader:
        name = "reader"

        def sidecar_register_filters(self, registry: object) -> None:
            def factory(ctx: RouteContext) -> Filter | None:
                seen.append(ctx.resources.get("demo.thing"))
                return None

            registry.add("reader", factory)  # type: ignore[attr-defined]

    s = sidecar_with(Reader())
    s.resources["demo.thing"] = "live"
    builder = s._composition(s.config, s.plugin_sections)
    builder.publish("demo.thing", "next")
    handler = builder.chain(HTTP_FRONT, "pay", "pay", responder(200))
    assert (await handler(make_exchange())).status == 200
    assert seen == ["next"]
    assert s.resources["demo.thing"] == "live"
    s._go_live(builder)
    assert s.resources["demo.thing"] == "next"


async def test_an_adapters_handler_is_built_once_per_composition() -> None:
    """Routes to one upstream share its handler (one pool), whichever front asks."""
    s = sidecar_with()
    builder = s._composition(s.config, s.plugin_sections)
    assert builder.terminal("pay") is builder.terminal("pay")
