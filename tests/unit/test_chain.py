"""A route's handler: filters composed once, run in Envoy's order, placed by their ORDER."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict

import sidecar
from sidecar import (
    Exchange,
    Filter,
    Handler,
    Response,
    RouteContext,
    compose,
    hookimpl,
)
from sidecar.api.phases import (
    ORDER_ACCESS_LOG,
    ORDER_DEFAULT,
    ORDER_METRICS,
    ORDER_REQUEST_HEADERS,
    ORDER_RESCUE,
    ORDER_TIMEOUT,
)
from sidecar.app import Sidecar
from sidecar.listeners.http import HTTP_FRONT
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, responder


def tracer(name: str, trace: list[str]) -> Filter:
    async def f(exchange: Exchange, call_next: Handler) -> Response:
        trace.append(f"{name} out")
        response = await call_next(exchange)
        trace.append(f"{name} back")
        return response

    return f


async def test_filters_run_in_order_outbound_and_in_reverse_on_the_way_back() -> None:
    """The first filter is the outermost: it sees the request first and the response last."""
    trace: list[str] = []

    async def terminal(exchange: Exchange) -> Response:
        trace.append("upstream")
        return Response(204)

    handler = compose([tracer("a", trace), tracer("b", trace)], terminal)
    assert (await handler(make_exchange())).status == 204
    assert trace == ["a out", "b out", "upstream", "b back", "a back"]


async def test_no_filters_is_the_terminal_handler_itself() -> None:
    """A route with nothing to do costs nothing: the adapter's handler is called directly."""
    terminal = responder(200)
    assert compose([], terminal) is terminal


async def test_a_filter_may_answer_without_calling_the_rest() -> None:
    """A filter that answers (a rejection, a cache hit) keeps the call from the inner ones."""
    seen: list[Exchange] = []

    async def reject(exchange: Exchange, call_next: Handler) -> Response:
        return Response(403)

    handler = compose([reject], responder(200, seen=seen))
    assert (await handler(make_exchange())).status == 403
    assert seen == []


async def test_a_composed_handler_is_reused_for_every_call() -> None:
    """Composition happens once: the same handler serves many calls, each with its own exchange."""
    seen: list[Exchange] = []
    handler = compose([tracer("a", [])], responder(200, seen=seen))
    for path in ("/1", "/2", "/3"):
        await handler(make_exchange(path=path))
    assert [e.path for e in seen] == ["/1", "/2", "/3"]


def test_builtin_orders_leave_plugin_filters_between_metrics_and_timeout() -> None:
    """The documented places: rescue, access log, metrics, plugins (500), timeout, headers."""
    assert (
        ORDER_RESCUE
        < ORDER_ACCESS_LOG
        < ORDER_METRICS
        < ORDER_DEFAULT
        < ORDER_TIMEOUT
        < ORDER_REQUEST_HEADERS
    )
    host = isolated_plugin_host(
        plugin("mine", ("early", ORDER_METRICS + 1), ("plain", ORDER_DEFAULT))
    )
    names = [r.name for r in host.registries.filters.ordered()]
    expected = ["rescue", "access_log", "metrics", "early", "plain", "timeout", "request_headers"]
    # the resilience filters sit between these (their places: sidecar/filters/__init__.py)
    assert [n for n in names if n in expected] == expected
    assert names[0] == "rescue" and names[-1] == "request_headers"


def plugin(name: str, *filters: tuple[str, int], factory: Any = None) -> object:
    class Plugin:
        @hookimpl
        def sidecar_register_filters(self, registry: sidecar.FilterRegistry) -> None:
            for filter_name, order in filters:
                registry.add(filter_name, factory or (lambda ctx: None), order=order)

    p = Plugin()
    p.name = name  # type: ignore[attr-defined]
    return p


async def test_sidecar_composes_registered_filters_in_order_skipping_those_with_nothing_to_do() -> (
    None
):
    """Each route gets the filters whose factory built one, in `order`, around the adapter."""
    trace: list[str] = []

    def factory(ctx: RouteContext) -> Filter | None:
        # one factory, three registrations: the route decides which ones take part
        return None if ctx.upstream_name == "quiet" else tracer(ctx.route, trace)

    host = isolated_plugin_host(plugin("mine", ("outer", 200), factory=factory))
    url = {"url": "http://127.0.0.1:9"}
    config = make_route_context(config={"upstreams": {"loud": url, "quiet": url}}).config
    s = Sidecar(config, plugin_host=host)
    s._build_adapters()
    builder = s._composition(config, s.plugin_sections)
    handler = builder.chain(HTTP_FRONT, "loud", "loud", responder(200))
    assert (await handler(make_exchange())).status == 200
    assert trace == ["loud out", "loud back"]
    quiet = builder.chain(HTTP_FRONT, "quiet", "quiet", responder(200))
    trace.clear()
    await quiet(make_exchange())
    assert trace == []


async def test_a_factory_sees_its_plugin_section_as_the_documented_helper_builds_it() -> None:
    """`dataclasses.replace(make_route_context(), plugin_sections=...)` drives a config filter."""

    class Greeting(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        greeting: str = "hello"

    def make_filter(ctx: RouteContext) -> Filter:
        text = ctx.plugin_config("hello", Greeting).greeting

        async def hello(exchange: Exchange, call_next: Handler) -> Response:
            response = await call_next(exchange)
            response.headers.add("x-hello", text)
            return response

        return hello

    ctx = dataclasses.replace(
        make_route_context(), plugin_sections={"hello": Greeting(greeting="hi")}
    )
    response = await make_filter(ctx)(make_exchange(path="/x"), responder(200))
    assert response.headers.get("x-hello") == "hi"
