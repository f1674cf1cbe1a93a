"""Every Python example of docs/plugins.md runs, as a plugin author would use it.

Each ```python block names the module it is (``# sidecar_tagger.py`` on its first line). The
block is executed as that module, registered in a plugin host beside the built-ins
(``isolated_plugin_host``, i.e. ``make_plugin_host(extra_plugins=...)``), and driven through a
route composed the way the sidecar composes one: a ``RouteContext`` from ``sidecar.testing``, every
registered filter's factory in chain order, around a stub upstream. Each example has its own
check below, and a block without one fails, so a new example cannot go unrun. The doc's YAML
fragments are validated with the example plugins loaded. The walkthrough blocks (``hello``, its
test) are also run end to end by tests/integration/test_docs_walkthroughs.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from sidecar import (
    LOG_FIELDS,
    RETRY_PERMIT,
    SPAN_NAME,
    AdapterServices,
    ConfigError,
    Exchange,
    Handler,
    ProviderContext,
    Response,
    RouteContext,
    SharedState,
    compose,
)
from sidecar.api.admin import runtime_key
from sidecar.api.http_client import HTTP_CLIENT
from sidecar.api.shared import SharedStateBuilder
from sidecar.config import parse_config
from sidecar.plugins import PluginHost
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, responder

from ..integration.doc_blocks import CodeBlock, code_blocks

ROOT = Path(__file__).resolve().parents[2]
DOC = "docs/plugins.md"
PYTHON = [b for b in code_blocks(DOC) if b.lang == "python"]


def example_name(block: CodeBlock) -> str:
    """The module a block shows: ``sidecar_hello/__init__.py`` → ``sidecar_hello``."""
    assert block.file_name, f"{block.where}: start the example with '# <module>.py'"
    return block.file_name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def block_of(name: str) -> CodeBlock:
    [block] = [b for b in PYTHON if example_name(b) == name]
    return block


#: the secret the doc's credential provider example reads by reference (``{env: ...}``)
MAPS_CLIENT_KEY = "k-0123456789"


@pytest.fixture(autouse=True)
def doc_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the doc's configs name their secrets in."""
    monkeypatch.setenv("MAPS_CLIENT_KEY", MAPS_CLIENT_KEY)


@pytest.fixture
def load(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """``load("sidecar_tagger")``: the doc's block executed as a module of its own (in
    ``sys.modules`` under a name that cannot shadow an installed plugin, for pydantic)."""

    def run(name: str) -> ModuleType:
        block = block_of(name)
        module = ModuleType(f"docs_example_{name}")
        monkeypatch.setitem(sys.modules, module.__name__, module)
        exec(compile(block.text, block.where, "exec"), module.__dict__)  # noqa: S102
        return module

    return run


def route(host: PluginHost, config: dict[str, Any] | None = None, **changes: Any) -> RouteContext:
    """The context of the route ``test`` with ``config``'s plugin sections validated by
    ``host`` (``changes`` replace other fields: ``front``, ``resources``, ``shared_state``)."""
    ctx = make_route_context(config=config, host=host, front=changes.pop("front", "http"))
    return dataclasses.replace(ctx, **changes)


def chain(host: PluginHost, ctx: RouteContext, terminal: Handler) -> Handler:
    """Every registered filter the route gets, in chain order, around ``terminal``."""
    filters = [f for reg in host.registries.filters.ordered() if (f := reg.item(ctx)) is not None]
    return compose(filters, terminal)


def order(host: PluginHost) -> list[str]:
    return [reg.name for reg in host.registries.filters.ordered()]


# --- the examples -----------------------------------------------------------------------------


async def check_sidecar_hello(module: ModuleType) -> None:
    host = isolated_plugin_host(module)
    greeted = chain(host, route(host, {"plugins": {"hello": {"greeting": "hi"}}}), responder())
    assert (await greeted(make_exchange())).headers.get("x-hello") == "hi"
    plain = chain(host, route(host), responder())
    assert "x-hello" not in (await plain(make_exchange())).headers


async def check_sidecar_tagger(module: ModuleType) -> None:
    host = isolated_plugin_host(module)
    seen: list[Exchange] = []
    config = {"plugins": {"tagger": {"teams": {"test": "payments"}}}}
    tagged = await chain(host, route(host, config), responder(seen=seen))(make_exchange())
    assert (seen[0].headers.get("x-team"), tagged.headers.get("x-tagged")) == ("payments", "1")
    assert module.make_tagger(route(host)) is None  # an upstream no team owns


async def check_sidecar_tenants(module: ModuleType) -> None:
    host = isolated_plugin_host(module)
    names = order(host)
    assert names.index("peer_allow") + 1 == names.index("tenants") < names.index("rate_limit")
    handler = chain(host, route(host), responder(200))
    refused = await handler(make_exchange(headers={"x-tenant": "initech"}))
    assert (refused.status, refused.headers.get("x-sidecar-error")) == (403, "tenant_refused")
    seen: list[Exchange] = []
    handler = chain(host, route(host), responder(200, seen=seen))
    assert (await handler(make_exchange(headers={"x-tenant": "acme"}))).status == 200
    assert seen[0].peek(module.TENANT) == "acme"


async def check_sidecar_digest(module: ModuleType) -> None:
    host = isolated_plugin_host(module)
    seen: list[Exchange] = []
    await chain(host, route(host), responder(seen=seen))(make_exchange("POST", body=b"abc"))
    assert seen[0].headers.get("x-body-sha256") == hashlib.sha256(b"abc").hexdigest()
    assert seen[0].body == b"abc"
    assert module.make_filter(route(host, front="grpc")) is None


async def check_sidecar_inflight(module: ModuleType) -> None:
    host = isolated_plugin_host(module)
    builder = SharedStateBuilder(SharedState())
    during: list[dict[str, Any]] = []
    counters = []

    async def upstream(exchange: Exchange) -> Response:
        during.append(counters[0].describe())
        return Response(200)

    for name in ("r1", "r2"):  # two routes of one upstream share one counter
        ctx = dataclasses.replace(route(host), route=name, shared_state=builder)
        counters.append(ctx.shared(module.IN_FLIGHT, None, module.InFlight))
        await chain(host, ctx, upstream)(make_exchange())
    live = builder.build()
    assert counters[0] is counters[1] is live.get(module.IN_FLIGHT, "test")
    assert during == [{"in_flight": 1}, {"in_flight": 1}]
    assert counters[0].gauges()[0][2] == 0


async def check_sidecar_static(module: ModuleType) -> None:
    host = isolated_plugin_host(module)
    [fragment] = yaml_after(block_of("sidecar_static"))
    config = parse_config(fragment.text, "<doc>", schemas=host.schemas())
    upstream = config.upstreams["payments-stub"]
    services = AdapterServices(make_route_context().metrics, logging.getLogger("test"))
    adapter = host.registries.adapters["static"](services)
    answer = await adapter.handler("payments-stub", upstream)(make_exchange())
    assert (answer.status, answer.body) == (503, b"down for maintenance")
    typo = fragment.text.replace("status: 503", "staus: 503")
    with pytest.raises(ConfigError, match=r"upstreams\.payments-stub\.options\.staus"):
        parse_config(typo, "<doc>", schemas=host.schemas())


async def check_sidecar_maintenance(module: ModuleType) -> None:
    host = isolated_plugin_host(module)
    runtime = SimpleNamespace(resources={})
    lifespan = host.registries.lifespans["maintenance"](runtime)  # type: ignore[arg-type]
    app = web.Application()
    app[runtime_key()] = runtime  # type: ignore[assignment]
    set_switch = host.registries.admin_routes["POST /maintenance"]
    async with lifespan:
        handler = chain(host, route(host, resources=runtime.resources), responder(200))
        assert (await handler(make_exchange())).status == 200
        switched = await set_switch(make_mocked_request("POST", "/maintenance?on=1", app=app))
        assert isinstance(switched, web.Response) and switched.text == '{"maintenance": true}'
        refused = await handler(make_exchange())
        assert (refused.status, refused.headers.get("x-sidecar-error")) == (503, "maintenance")
        await set_switch(make_mocked_request("POST", "/maintenance?on=0", app=app))
        assert (await handler(make_exchange())).status == 200
    assert module.SWITCH not in runtime.resources
    assert module.make_filter(route(host)) is None


async def check_sidecar_window(module: ModuleType) -> None:
    host = isolated_plugin_host(module)
    [fragment] = yaml_after(block_of("sidecar_window"))
    config = parse_config(fragment.text, "<doc>", schemas=host.schemas())
    backend_class = host.registries.ratelimit_backends["window"]
    backend = backend_class("shared", config.ratelimit_backends["shared"])
    now = [10.0]
    with pytest.MonkeyPatch.context() as patch:  # the example's clock, so no window ends by chance
        patch.setattr(module, "time", SimpleNamespace(monotonic=lambda: now[0]))
        await backend.start()
        limit = module.Limit(rate=1.0, burst=1)  # window_s: 2 in the doc: two calls a window
        got = [(await backend.decide("k", limit)).allowed for _ in range(3)]
        assert got == [True, True, False]
        now[0] = 12.0  # the next window
        assert (await backend.decide("k", limit)).allowed
        await backend.aclose()
    typo = fragment.text.replace("window_s: 2", "windows: 2")
    with pytest.raises(ConfigError, match=r"ratelimit_backends\.shared\.windows"):
        parse_config(typo, "<doc>", schemas=host.schemas())


async def check_sidecar_client_id(module: ModuleType) -> None:
    # the key by reference, as the doc's config gives it (set by the autouse fixture below)
    host = isolated_plugin_host(module)
    [fragment] = yaml_after(block_of("sidecar_client_id"))
    config = parse_config(fragment.text, "<doc>", schemas=host.schemas())
    auth = config.upstreams["maps"].auth
    assert auth is not None
    provider_class = host.registries.credentials[auth.type]
    settings = provider_class.settings_model.model_validate(auth.options())
    provider = provider_class(settings, provider_context("maps"))
    exchange = make_exchange(headers={"x-client-id": "spoofed-by-the-app"})
    await provider.apply(exchange)
    assert exchange.headers.get_all("x-client-id") == ["shop-frontend"]
    assert exchange.headers.get("x-client-key") == MAPS_CLIENT_KEY
    assert provider.header == "x-client-id"


async def check_sidecar_quota(module: ModuleType) -> None:
    host = isolated_plugin_host(module)
    ctx = dataclasses.replace(route(host), rescue_hook=host.rescue_hook())

    def raising(error: BaseException) -> Handler:
        async def upstream(exchange: Exchange) -> Response:
            raise error

        return upstream

    answered = await chain(host, ctx, raising(module.QuotaExceeded()))(make_exchange())
    assert (answered.status, answered.headers.get("retry-after")) == (429, "30")
    other = await chain(host, ctx, raising(ZeroDivisionError()))(make_exchange())
    assert (other.status, other.headers.get("x-sidecar-error")) == (500, "internal")


async def check_test_hello(module: ModuleType) -> None:
    # the socket-free one runs here; the one with a real sidecar runs in the walkthrough test
    await module.test_hello_adds_the_configured_greeting()
    assert callable(module.test_hello_through_a_real_sidecar)


async def check_sidecar_operations(module: ModuleType) -> None:
    exchange = make_exchange("POST", "/graphql")
    await module.operations(exchange, responder())
    assert exchange.peek(LOG_FIELDS) == {"graphql_operation": "GetUser"}
    assert (exchange.peek(SPAN_NAME), exchange.peek(RETRY_PERMIT)) == ("query GetUser", True)


async def check_sidecar_rpc(module: ModuleType) -> None:
    sent: list[Exchange] = []

    class Clients:  # the sidecar's HTTP client as a running sidecar publishes it
        def lend(self, name: str, upstream: object) -> Handler:
            return responder(200, b"{}", seen=sent)

    ctx = make_route_context({"adapter": "rpc", "url": "http://127.0.0.1:9"})
    assert module.make_filter(ctx) is None  # no running sidecar: nothing to lend
    lending = module.make_filter(dataclasses.replace(ctx, resources={HTTP_CLIENT: Clients()}))
    assert (await lending(make_exchange(), module.attempt)).status == 200
    assert [(e.method, e.path, e.body) for e in sent] == [("POST", "/rpc", b"{}")]


async def check_sidecar_lazy_client(module: ModuleType) -> None:
    import aiohttp

    assert not isinstance(module.aiohttp, ModuleType)  # a stand-in until it is first used
    assert module.aiohttp.ClientSession is aiohttp.ClientSession  # then the real module


CHECKS: dict[str, Callable[[ModuleType], Awaitable[None]]] = {
    "sidecar_hello": check_sidecar_hello,
    "sidecar_tagger": check_sidecar_tagger,
    "sidecar_tenants": check_sidecar_tenants,
    "sidecar_digest": check_sidecar_digest,
    "sidecar_inflight": check_sidecar_inflight,
    "sidecar_static": check_sidecar_static,
    "sidecar_maintenance": check_sidecar_maintenance,
    "sidecar_window": check_sidecar_window,
    "sidecar_client_id": check_sidecar_client_id,
    "sidecar_quota": check_sidecar_quota,
    "test_hello": check_test_hello,
    "sidecar_operations": check_sidecar_operations,
    "sidecar_rpc": check_sidecar_rpc,
    "sidecar_lazy_client": check_sidecar_lazy_client,
}


def provider_context(upstream: str) -> ProviderContext:
    """What the sidecar lends a provider, with nothing the example may use for real."""

    def unused(*args: Any) -> Any:
        raise AssertionError("the example needs no task and no HTTP client")

    def clock() -> float:
        return 0.0

    metrics = make_route_context().metrics
    log = logging.getLogger("test")
    return ProviderContext(upstream, "client_id", "", metrics, log, unused, unused, clock, clock)


def yaml_after(block: CodeBlock) -> list[CodeBlock]:
    """The YAML fragment right after ``block`` in the doc (the example's config)."""
    blocks = code_blocks(DOC)
    following = blocks[blocks.index(block) + 1 :][:1]
    return [b for b in following if b.lang == "yaml"]


# --- the tests --------------------------------------------------------------------------------


def test_the_doc_has_its_examples() -> None:
    """The guide's examples are found (the checks below cannot pass on an empty page)."""
    assert {example_name(b) for b in PYTHON} >= {"sidecar_hello", "sidecar_tenants", "test_hello"}


@pytest.mark.parametrize("block", PYTHON, ids=example_name)
async def test_every_python_example_runs_as_shown(
    block: CodeBlock, load: Callable[[str], ModuleType]
) -> None:
    """Each Python example of docs/plugins.md loads as a plugin and does what the doc says."""
    name = example_name(block)
    check = CHECKS.get(name)
    assert check is not None, f"{block.where}: example {name!r} has no check in this test"
    await check(load(name))


def test_every_example_plugin_declares_the_api_version_it_was_written_for() -> None:
    """Each example plugin shows `SIDECAR_API = 1`, as a plugin author should copy it."""
    plugins = [b for b in PYTHON if "@hookimpl" in b.text]
    assert plugins
    for block in plugins:
        assert "\nSIDECAR_API = 1\n" in block.text, f"{block.where}: declare SIDECAR_API = 1"


@pytest.mark.parametrize("name", ["pyproject.toml", "sidecar_hello/__init__.py"])
def test_the_first_plugin_in_the_doc_is_plugins_hello_file_for_file(name: str) -> None:
    """The doc's first plugin is the real plugins/hello, so neither can drift from the other."""
    [block] = [
        b for b in code_blocks(DOC) if b.anchor == "plugins-first-plugin" and b.file_name == name
    ]
    shown = block.text.split("\n", 1)[1]  # after the "# <file name>" line
    assert shown == (ROOT / "plugins" / "hello" / name).read_text()


def yaml_fragments() -> Iterator[CodeBlock]:
    for block in code_blocks(DOC):
        if block.lang == "yaml" and block.anchor is None:
            yield block


@pytest.mark.parametrize("block", list(yaml_fragments()), ids=lambda b: b.where)
def test_every_yaml_fragment_is_a_valid_config_with_the_example_plugins(
    block: CodeBlock, load: Callable[[str], ModuleType]
) -> None:
    """A config fragment of the guide passes the config check with the plugins it shows."""
    plugins = [load(example_name(b)) for b in PYTHON if "@hookimpl" in b.text]
    host = isolated_plugin_host(*plugins)
    parse_config(block.text, "<doc>", schemas=host.schemas())
