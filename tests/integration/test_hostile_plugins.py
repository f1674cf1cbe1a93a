"""Hostile and broken plugins against the plugin API: what the sidecar promises when one misbehaves.

The promises: the sidecar never dies from a plugin's error while serving; a start-up failure names
the plugin and what failed (``sidecar run`` exits 1 or 2 with that line, no traceback as the
message); a reload a plugin breaks is refused and the old config keeps serving; shutdown finishes
within the grace; secrets never show. Plugins run in-process (``running_sidecar``,
``isolated_plugin_host``) or, for exit codes and signals, as an installed distribution found
through its entry point (``tests/fixtures/sidecar-hostile-plugin``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import yaml

from sidecar import (
    API_VERSION,
    Exchange,
    FrontTraits,
    Handler,
    Phase,
    PluginError,
    RegistryConflict,
    Response,
    RouteContext,
    SharedKey,
    hookimpl,
)
from sidecar.api.fronts import AppActivity
from sidecar.app import Sidecar
from sidecar.telemetry.logs import JsonFormatter
from sidecar.testing import SidecarProcess, isolated_plugin_host, running_sidecar, wait_until

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ROOT / "tests" / "fixtures" / "sidecar-hostile-plugin" / "sidecar_hostile.py"
SIDECAR = str(Path(sys.executable).with_name("sidecar"))
EPHEMERAL = {
    "admin": {"address": "127.0.0.1:0"},
    "http": {"address": "127.0.0.1:0"},
    "grpc": {"address": "127.0.0.1:0"},
}
CONFIG: dict[str, Any] = {"upstreams": {"echo": {"adapter": "echo"}}}
GRACE = 1.0  # shutdown.drain_timeout where a test waits for the drain
#: how long past the grace a shutdown may take before a test calls it hung
SLACK = 4.0
SHORT_GRACE = {"shutdown": {"drain_timeout": f"{GRACE}s", "app_quiet_period": "0s"}}
SECRET = "h0stile-s3cret-7c1d"  # distinctive: grep-able in any output


@pytest.fixture(autouse=True)
def finalise_what_broken_plugins_leave() -> Iterator[None]:
    """Collect each test's garbage (a connection task a plugin killed...) after it, not while
    pytest formats a later failure: CPython 3.11's ast.parse fails if a finaliser runs inside."""
    yield
    gc.collect()


class Plugin:
    """A plugin made of plain functions, one per hook (``sidecar_register_fronts=...``)."""

    def __init__(self, name: str, **hooks: Callable[..., Any]) -> None:
        self.name = name
        for hook, impl in hooks.items():
            setattr(self, hook, hookimpl(impl))


@contextlib.contextmanager
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """Everything the sidecar logs meanwhile, as the JSON lines the process would print."""
    lines: list[dict[str, Any]] = []
    formatter = JsonFormatter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(formatter.format(record)))

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger("sidecar")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def get(port: int, path: str, timeout: float = 5.0) -> httpx.Response:
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


def write_config(path: Path, **extra: Any) -> Path:
    """A config file whose echo upstream injects ``x-version`` (tells which config serves)."""
    version = extra.pop("version", "v1")
    echo = {"adapter": "echo", "request_headers": {"x-version": version}, **extra}
    path.write_text(yaml.safe_dump({**EPHEMERAL, "upstreams": {"echo": echo}}))
    return path


async def served_version(s: Sidecar) -> str:
    r = await get(s.http_port, "/echo/which")
    return str(r.json()["headers"]["x-version"])


# --- fronts ---------------------------------------------------------------------------------

Failure = Literal[
    "",
    "compose",
    "compose-on-reload",
    "swap-on-reload",
    "start",
    "start-oserror",
    "stop",
    "drain",
    "drain-hang",
]


class HostileFront:
    """A front with no port that fails where told; ``release`` ends a hanging drain."""

    traits = FrontTraits("hostile")
    faces: Literal["app", "peers"] = "app"

    def __init__(self, fail: Failure, release: asyncio.Event | None = None) -> None:
        self.fail, self.release = fail, release
        self.composed = self.swapped = 0

    def compose(self, builder: Any) -> None:
        self.composed += 1
        if self.fail == "compose" or (self.fail == "compose-on-reload" and self.composed > 1):
            raise RuntimeError("the hostile front cannot compose")

    def swap(self, routes: None) -> None:
        self.swapped += 1
        if self.fail == "swap-on-reload" and self.swapped > 1:
            raise RuntimeError("the hostile front cannot swap")

    def upstreams(self, routes: None) -> Mapping[str, Any]:
        return {}

    async def start(self) -> None:
        if self.fail == "start":
            raise RuntimeError("the hostile front cannot start")
        if self.fail == "start-oserror":
            raise OSError("the hostile device is busy")

    @property
    def port(self) -> int:
        return 0

    @property
    def address(self) -> str:
        return "nowhere"

    def hold_for_app(self) -> None:
        pass

    def stop_accepting(self) -> None:
        if self.fail == "stop":
            raise RuntimeError("the hostile front cannot stop accepting")

    async def drain(self, grace: float) -> int:
        if self.fail == "drain":
            raise RuntimeError("the hostile front cannot drain")
        if self.fail == "drain-hang" and self.release is not None:
            await self.release.wait()
        return 0

    def app_activity(self) -> AppActivity:
        return AppActivity(0, 0, 0)


def front_plugin(factory: Callable[[Any], object], name: str = "hostile") -> Plugin:
    return Plugin(name, sidecar_register_fronts=lambda registry: registry.add(name, factory))


def failing_front(fail: Failure, release: asyncio.Event | None = None) -> Plugin:
    return front_plugin(lambda ctx: HostileFront(fail, release))


async def test_a_front_factory_that_raises_stops_start_up_naming_plugin_and_front() -> None:
    """A front that cannot be built stops start-up with one message naming plugin and front."""

    def factory(ctx: Any) -> object:
        raise RuntimeError("no socket for you")

    with pytest.raises(PluginError) as e:
        async with running_sidecar(CONFIG, plugins=[front_plugin(factory)]):
            pass
    assert str(e.value) == (
        "plugin 'hostile': front 'hostile' failed to build: RuntimeError: no socket for you"
    )


async def test_a_front_whose_start_raises_stops_start_up_naming_the_plugin() -> None:
    """A plugin front that fails to start is a PluginError naming the plugin and the front."""
    with pytest.raises(PluginError, match="plugin 'hostile'.*front 'hostile'"):
        async with running_sidecar(CONFIG, plugins=[failing_front("start")]):
            pass


async def test_a_front_whose_start_raises_oserror_keeps_its_reason_and_names_the_plugin() -> None:
    """An OSError from a plugin front's start keeps its own text and names the plugin."""
    with pytest.raises(OSError) as e:
        async with running_sidecar(CONFIG, plugins=[failing_front("start-oserror")]):
            pass
    assert "the hostile device is busy" in str(e.value)
    assert "hostile" in str(e.value).replace("the hostile device", "")


async def test_a_front_factory_returning_a_non_front_is_refused_naming_the_plugin() -> None:
    """A factory that returns something that is not a Front is refused, naming plugin and front."""
    with pytest.raises(PluginError, match="plugin 'hostile'.*front 'hostile'"):
        async with running_sidecar(CONFIG, plugins=[front_plugin(lambda ctx: "not a front")]):
            pass


async def test_a_front_whose_compose_raises_at_start_up_is_named() -> None:
    """A plugin front that cannot compose its routes stops start-up naming plugin and front."""
    with pytest.raises(PluginError, match="plugin 'hostile'.*front 'hostile'"):
        async with running_sidecar(CONFIG, plugins=[failing_front("compose")]):
            pass


async def test_a_front_whose_compose_raises_on_reload_is_refused_and_the_old_config_serves(
    tmp_path: Path,
) -> None:
    """A reload a plugin front cannot compose is refused, counted, and v1 keeps serving."""
    path = write_config(tmp_path / "sidecar.yaml")
    plugin = failing_front("compose-on-reload")
    async with running_sidecar(path.read_text(), config_path=str(path), plugins=[plugin]) as s:
        write_config(path, version="v2")
        result = await s.reload_result()
        assert not result.applied
        assert "the hostile front cannot compose" in result.problems[0]
        assert await served_version(s) == "v1"
        assert s.config.upstreams["echo"].request_headers == {"x-version": "v1"}
        refused = {"result": "refused"}
        assert s.metrics.registry.get_sample_value("sidecar_config_reloads_total", refused) == 1


async def test_a_reload_refused_by_a_front_names_the_plugin(tmp_path: Path) -> None:
    """The refusal's reason (admin API, log) names the plugin whose front refused the reload."""
    path = write_config(tmp_path / "sidecar.yaml")
    plugin = failing_front("compose-on-reload")
    async with running_sidecar(path.read_text(), config_path=str(path), plugins=[plugin]) as s:
        write_config(path, version="v2")
        result = await s.reload_result()
    assert "plugin 'hostile'" in result.problems[0]


async def test_a_front_whose_swap_raises_on_reload_leaves_the_old_config_whole(
    tmp_path: Path,
) -> None:
    """A reload that a front fails to make live is refused; config and routes stay v1 together."""
    path = write_config(tmp_path / "sidecar.yaml")
    plugin = failing_front("swap-on-reload")
    async with running_sidecar(path.read_text(), config_path=str(path), plugins=[plugin]) as s:
        write_config(path, version="v2")
        result = await s.reload_result()
        assert not result.applied
        assert s.config.upstreams["echo"].request_headers == {"x-version": "v1"}
        assert await served_version(s) == "v1"


async def test_a_front_whose_drain_raises_still_lets_shutdown_finish_cleanly() -> None:
    """A plugin front failing to drain is logged; the shutdown finishes without raising."""
    # no gRPC port here: the drain this test fails abandons its shutdown, which then warns in
    # whichever test runs next
    config = {**CONFIG, **SHORT_GRACE, "grpc": {"enabled": False}}
    async with running_sidecar(config, plugins=[failing_front("drain")]) as s:
        pass
    assert s.state == "stopped"


async def test_a_front_whose_stop_accepting_raises_does_not_keep_the_http_port_open() -> None:
    """After shutdown the HTTP port is closed, even when a plugin front failed to stop."""
    port = 0
    with contextlib.suppress(RuntimeError):
        config = {**CONFIG, "grpc": {"enabled": False}}  # (as above)
        async with running_sidecar(config, plugins=[failing_front("stop")]) as s:
            port = s.http_port
    with pytest.raises(httpx.ConnectError):
        await get(port, "/echo/x", timeout=2.0)


async def test_a_front_whose_drain_hangs_is_cut_at_the_grace() -> None:
    """Shutdown finishes within the grace (plus slack) even when a plugin front's drain hangs."""
    release = asyncio.Event()
    plugin = failing_front("drain-hang", release)
    async with running_sidecar({**CONFIG, **SHORT_GRACE}, plugins=[plugin]) as s:
        drain = asyncio.create_task(s.drain())
        try:
            done, _ = await asyncio.wait({drain}, timeout=GRACE + SLACK)
        finally:
            release.set()  # let the hung drain end, so nothing outlives the test
            await drain
        assert done, f"still draining {GRACE + SLACK}s after the shutdown began"


def adds_front(plugin: str, front: str) -> Plugin:
    return Plugin(plugin, sidecar_register_fronts=lambda registry: registry.add(front, str))


def test_two_plugins_registering_one_front_name_are_refused_naming_both() -> None:
    """A front name taken twice, a built-in's included, stops start-up naming both plugins."""
    with pytest.raises(RegistryConflict) as twice:
        isolated_plugin_host(adds_front("a", "sse"), adds_front("b", "sse"))
    message = str(twice.value)
    assert message.startswith("front 'sse' registered twice: by plugin ")
    assert "plugin 'a'" in message and "plugin 'b'" in message
    with pytest.raises(RegistryConflict) as builtin:
        isolated_plugin_host(adds_front("mine", "http"))
    assert str(builtin.value) == (
        "front 'http' registered twice: by plugin 'mine' and by plugin 'sidecar.listeners.fronts'"
    )


# --- filter placement -----------------------------------------------------------------------


def passing(ctx: RouteContext) -> Any:
    async def passes(exchange: Exchange, call_next: Handler) -> Response:
        return await call_next(exchange)

    return passes


def placed(name: str, **place: Any) -> Plugin:
    def register(registry: Any) -> None:
        registry.add(name, passing, **place)

    return Plugin(f"placer-{name}", sidecar_register_filters=register)


@pytest.mark.parametrize(
    ("plugins", "message"),
    [
        (
            [placed("f", order=5000)],
            "plugin 'placer-f' (in-process) failed in "
            "sidecar_register_filters: ValueError: filter 'f': order 5000 is outside every phase",
        ),
        ([placed("f", order=-1)], "filter 'f': order -1 is outside every phase (0-999)"),
        (
            [placed("f", after="nope")],
            "filter 'f' (plugin 'placer-f') is placed after 'nope', which no plugin registered",
        ),
        ([placed("f", before="nope")], "filter 'f' (plugin 'placer-f') is placed before 'nope'"),
        ([placed("a", after="b"), placed("b", after="a")], "in a circle: "),
        ([placed("a", after="a")], "filters placed next to each other in a circle: a -> a"),
        ([placed("f", phase=Phase.ADMIT, after="rate_limit")], "give one of order, phase"),
    ],
    ids=["order-above", "order-below", "after-unknown", "before-unknown", "circle", "self", "two"],
)
def test_filter_placement_abuse_is_refused_at_start_up_saying_why(
    plugins: list[Plugin], message: str
) -> None:
    """A filter placed nowhere, next to a missing filter or in a circle stops start-up, named."""
    with pytest.raises(PluginError) as e:
        isolated_plugin_host(*plugins)
    assert message in str(e.value)


@pytest.mark.parametrize("phase", ["observe", 450, 5000])
def test_a_phase_that_is_not_a_phase_is_refused_naming_the_plugin(phase: object) -> None:
    """``phase=`` given a string or a number is refused at start-up naming the plugin."""
    with pytest.raises(PluginError, match="plugin 'placer-f' .*sidecar_register_filters"):
        isolated_plugin_host(placed("f", phase=phase))


def test_a_phase_that_is_not_a_phase_is_refused_saying_what_is_wrong() -> None:
    """The refusal of ``phase="observe"`` names the filter and says phase takes a Phase."""
    with pytest.raises(PluginError) as e:
        isolated_plugin_host(placed("f", phase="observe"))
    assert "filter 'f'" in str(e.value) and "Phase" in str(e.value)


async def test_a_filter_placed_outside_rescue_that_raises_is_still_a_500() -> None:
    """Even a filter a plugin put before ``rescue`` cannot kill the sidecar: 500, then serving."""

    def boom(ctx: RouteContext) -> Any:
        async def booms(exchange: Exchange, call_next: Handler) -> Response:
            if exchange.path == "/boom":
                raise ZeroDivisionError("outside rescue")
            return await call_next(exchange)

        return booms

    plugin = Plugin(
        "outer",
        sidecar_register_filters=lambda registry: registry.add("outer", boom, before="rescue"),
    )
    async with running_sidecar(CONFIG, plugins=[plugin]) as s:
        failed = await get(s.http_port, "/echo/boom")
        fine = await get(s.http_port, "/echo/fine")
    assert (failed.status_code, failed.headers["x-sidecar-error"]) == (500, "internal")
    assert fine.status_code == 200


# --- shared state ---------------------------------------------------------------------------


class Cache:
    """One plugin's per-upstream object."""


class Counter:
    """Another plugin's, under the same key name."""


def sharing(plugin: str, kind: type, got: list[object], settings: object = "same") -> Plugin:
    """A plugin whose filter factory asks for a shared ``kind`` under the key name ``cache``."""
    key: SharedKey[Any] = SharedKey("cache")

    def make(ctx: RouteContext) -> None:
        got.append(ctx.shared(key, settings, kind))

    return Plugin(plugin, sidecar_register_filters=lambda registry: registry.add(plugin, make))


async def test_two_plugins_using_one_key_name_never_get_each_others_objects() -> None:
    """Each plugin gets an object of its own type (or start-up refuses the clash, naming both)."""
    caches: list[object] = []
    counters: list[object] = []
    plugins = [sharing("a", Cache, caches), sharing("b", Counter, counters)]
    try:
        async with running_sidecar(CONFIG, plugins=plugins):
            pass
    except PluginError as e:
        assert "'a'" in str(e) and "'b'" in str(e)
        return
    assert all(isinstance(x, Cache) for x in caches), caches
    assert all(isinstance(x, Counter) for x in counters), counters


def raising_share(error: Exception, when: Callable[[RouteContext], bool] = lambda c: True) -> Any:
    """A plugin whose shared object's factory raises ``error`` where ``when`` says."""
    key: SharedKey[Cache] = SharedKey("fragile-cache")
    made: list[Cache] = []

    def make(ctx: RouteContext) -> None:
        def build() -> Cache:
            if when(ctx):
                raise error
            made.append(Cache())
            return made[-1]

        ctx.shared(key, ctx.upstream.timeout, build)

    plugin = Plugin(
        "fragile", sidecar_register_filters=lambda registry: registry.add("fragile-cache", make)
    )
    return plugin, key, made


async def test_a_factory_raising_inside_ctx_shared_stops_start_up_naming_plugin_and_route() -> None:
    """A shared object that cannot be built names the plugin, its filter and the route."""
    plugin, _, _ = raising_share(RuntimeError("cache full"))
    with pytest.raises(PluginError) as e:
        async with running_sidecar(CONFIG, plugins=[plugin]):
            pass
    assert str(e.value) == (
        "plugin 'fragile': filter 'fragile-cache' failed for route 'echo': RuntimeError: cache full"
    )


async def test_a_factory_raising_keyerror_inside_ctx_shared_is_named_as_the_plugins() -> None:
    """A plugin's KeyError is its bug, not a config problem: the error names the plugin."""
    plugin, _, _ = raising_share(KeyError("size"))
    with pytest.raises(PluginError, match="plugin 'fragile'"):
        async with running_sidecar(CONFIG, plugins=[plugin]):
            pass


async def test_a_factory_raising_inside_ctx_shared_on_reload_keeps_the_live_object(
    tmp_path: Path,
) -> None:
    """A refused reload leaves the running shared object in place (its state survives)."""
    plugin, key, made = raising_share(RuntimeError("cache full"), lambda c: c.upstream.timeout == 7)
    path = write_config(tmp_path / "sidecar.yaml")
    async with running_sidecar(path.read_text(), config_path=str(path), plugins=[plugin]) as s:
        live = s.shared.get(key, "echo")
        write_config(path, version="v2", timeout="7s")
        result = await s.reload_result()
        assert not result.applied
        assert "plugin 'fragile'" in result.problems[0]
        assert s.shared.get(key, "echo") is live is made[0]
        assert await served_version(s) == "v1"


# --- lifespans ------------------------------------------------------------------------------


def lifespan_plugin(factory: Callable[[Any], Any]) -> Plugin:
    return Plugin(
        "life", sidecar_register_lifespans=lambda registry: registry.add("cache", factory)
    )


@contextlib.asynccontextmanager
async def never_yields(runtime: Any) -> Any:
    if runtime is not None:
        return
    yield  # never reached: it makes this an async generator


@pytest.mark.parametrize(
    ("factory", "reason"),
    [
        (never_yields, "RuntimeError: generator didn't yield"),
        (lambda runtime: 42, "AttributeError: 'int' object has no attribute '__aenter__'"),
    ],
    ids=["returns-without-yielding", "not-a-context-manager"],
)
async def test_a_lifespan_that_never_yields_stops_start_up_naming_it(
    factory: Callable[[Any], Any], reason: str
) -> None:
    """A lifespan that ends before yielding (or is none) stops start-up naming plugin, lifespan."""
    with pytest.raises(PluginError) as e:
        async with running_sidecar(CONFIG, plugins=[lifespan_plugin(factory)]):
            pass
    assert str(e.value) == f"plugin 'life': lifespan 'cache' failed at start-up: {reason}"


async def test_a_lifespan_whose_exit_hangs_does_not_hold_shutdown_past_the_grace() -> None:
    """Shutdown finishes within the grace (plus slack) even when a lifespan never exits."""
    release = asyncio.Event()

    @contextlib.asynccontextmanager
    async def stuck(runtime: Any) -> Any:
        yield
        await release.wait()

    async with running_sidecar({**CONFIG, **SHORT_GRACE}, plugins=[lifespan_plugin(stuck)]) as s:
        drain = asyncio.create_task(s.drain())
        try:
            done, _ = await asyncio.wait({drain}, timeout=GRACE + SLACK)
        finally:
            release.set()
            await drain
        assert done, f"still stopping {GRACE + SLACK}s after the shutdown began"


# --- admin routes ---------------------------------------------------------------------------


def admin_plugin(handler: Any, path: str = "/hostile") -> Plugin:
    return Plugin(
        "adm", sidecar_register_admin_routes=lambda registry: registry.add("GET", path, handler)
    )


async def returns_garbage(request: Any) -> Any:
    return {"not": "a response"}


async def test_an_admin_route_returning_garbage_answers_500_and_the_admin_port_keeps_serving() -> (
    None
):
    """A plugin admin handler returning a non-response is a 500; /healthz still answers."""
    async with running_sidecar(CONFIG, plugins=[admin_plugin(returns_garbage)]) as s:
        bad = await get(s.admin_port, "/hostile")
        health = await get(s.admin_port, "/healthz")
    assert bad.status_code == 500
    assert health.status_code == 200


async def test_an_admin_route_returning_garbage_is_named_like_one_that_raises() -> None:
    """The 500 for a non-response names the plugin, as it does for a handler that raises."""
    async with running_sidecar(CONFIG, plugins=[admin_plugin(returns_garbage)]) as s:
        bad = await get(s.admin_port, "/hostile")
    assert bad.json() == {"error": "internal", "plugin": "adm"}


async def test_an_admin_route_with_an_invalid_path_is_refused_naming_the_plugin() -> None:
    """``add("GET", "no-slash", ...)`` is refused at start-up naming the plugin and the route."""
    with pytest.raises(PluginError, match="plugin 'adm'"):
        async with running_sidecar(CONFIG, plugins=[admin_plugin(returns_garbage, "no-slash")]):
            pass


# --- SIDECAR_API ----------------------------------------------------------------------------


class Versioned:
    name = "versioned"

    def __init__(self, api: object) -> None:
        self.SIDECAR_API = api

    @hookimpl
    def sidecar_register_filters(self, registry: Any) -> None:
        registry.add("versioned", passing)


@pytest.mark.parametrize("api", ["abc", 2, "2.0", 0])
def test_a_plugin_for_another_api_major_is_refused_naming_both_versions(api: object) -> None:
    """``SIDECAR_API`` of another major (or not a version) is refused with both versions named."""
    with pytest.raises(PluginError) as e:
        isolated_plugin_host(Versioned(api))
    assert str(e.value) == (
        f"plugin 'versioned' (in-process) is written for plugin API {api}; "
        f"this sidecar has plugin API {API_VERSION}"
    )


@pytest.mark.parametrize("api", [None, 1, "1", "1.0", "1.9"])
def test_a_plugin_for_this_api_major_or_none_declared_loads(api: object) -> None:
    """``SIDECAR_API`` of this major, or ``None`` (as if undeclared), loads the plugin."""
    host = isolated_plugin_host(Versioned(api))
    assert [r.name for r in host.registries.filters.by_owner("versioned")] == ["versioned"]


# --- the rescue hook ------------------------------------------------------------------------


def raising_filter_plugin() -> Plugin:
    def make(ctx: RouteContext) -> Any:
        async def boom(exchange: Exchange, call_next: Handler) -> Response:
            if exchange.path == "/boom":
                raise ZeroDivisionError("the filter divided by zero")
            return await call_next(exchange)

        return boom

    return Plugin("raiser", sidecar_register_filters=lambda registry: registry.add("boom", make))


def rescuer(answer: Callable[[], object]) -> Plugin:
    return Plugin("rescuer", sidecar_rescue=lambda exchange, error: answer())


async def test_a_rescue_hook_that_raises_is_logged_and_the_call_is_a_500() -> None:
    """A raising rescue hook is logged with its plugin's name; the app gets 500 and goes on."""

    def raises() -> object:
        raise KeyError("the rescuer fell over")

    with log_lines() as lines:
        async with running_sidecar(CONFIG, plugins=[raising_filter_plugin(), rescuer(raises)]) as s:
            failed = await get(s.http_port, "/echo/boom")
            fine = await get(s.http_port, "/echo/fine")
    assert (failed.status_code, failed.headers["x-sidecar-error"]) == (500, "internal")
    assert fine.status_code == 200
    [hook] = [x for x in lines if x.get("plugin") == "rescuer"]
    assert hook["msg"] == "plugin 'rescuer': sidecar_rescue raised"
    [call] = [x for x in lines if x["msg"] == "unexpected error while handling a call"]
    assert (call["plugin"], call["filter"], call["route"]) == ("raiser", "boom", "echo")


@pytest.mark.parametrize(
    "garbage", ["not a response", {"status": 200}, 418], ids=["str", "dict", "int"]
)
async def test_a_rescue_hook_returning_a_non_response_still_answers_the_app(
    garbage: object,
) -> None:
    """A rescue hook's non-Response is ignored (logged with its name): the app gets a 500."""
    plugins = [raising_filter_plugin(), rescuer(lambda: garbage)]
    async with running_sidecar({**CONFIG, **SHORT_GRACE}, plugins=plugins) as s:
        failed = await get(s.http_port, "/echo/boom", timeout=2.0)
    assert failed.status_code == 500


# --- hook implementations -------------------------------------------------------------------


def test_a_hook_with_wrong_argument_names_is_refused_naming_plugin_hook_and_argument() -> None:
    """``def sidecar_register_filters(reg)`` stops start-up naming the plugin, hook and ``reg``."""

    def register(reg: Any) -> None:
        reg.add("never", passing)

    with pytest.raises(PluginError) as e:
        isolated_plugin_host(Plugin("misnamed", sidecar_register_filters=register))
    message = str(e.value)
    assert message.startswith("plugin 'misnamed' (in-process) failed to register: ")
    assert "sidecar_register_filters" in message and "{'reg'}" in message


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_an_async_hook_is_refused_naming_the_plugin() -> None:
    """``async def sidecar_register_filters`` stops start-up instead of registering nothing."""

    async def register(registry: Any) -> None:
        registry.add("async-filter", passing)

    with pytest.raises(PluginError, match="plugin 'asyncy'"):
        isolated_plugin_host(Plugin("asyncy", sidecar_register_filters=register))


# --- secrets --------------------------------------------------------------------------------


async def test_a_plugin_error_quoting_its_route_context_never_shows_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin that puts its whole RouteContext in an error shows secrets only as references."""
    monkeypatch.setenv("HOSTILE_SECRET", SECRET)

    def make(ctx: RouteContext) -> None:
        if ctx.upstream.timeout == 7:  # only on the reload
            raise RuntimeError(f"cannot build with {ctx!r} and {dict(ctx.resources)!r}")

    plugin = Plugin(
        "leaky",
        sidecar_register_filters=lambda registry: registry.add(
            "leaky", make, after="request_headers"
        ),
    )
    path = tmp_path / "sidecar.yaml"
    key = {"env": "HOSTILE_SECRET"}

    def write(timeout: str) -> None:
        echo = {
            "adapter": "echo",
            "timeout": timeout,
            "request_headers": {"x-api-key": key},
            "auth": {"type": "bearer", "token": key},
        }
        path.write_text(yaml.safe_dump({**EPHEMERAL, "upstreams": {"echo": echo}}))

    write("5s")
    with log_lines() as lines:
        async with running_sidecar(path.read_text(), config_path=str(path), plugins=[plugin]) as s:
            assert (await get(s.http_port, "/echo/x")).status_code == 200
            write("7s")
            result = await s.reload_result()
    assert not result.applied and "HOSTILE_SECRET" in result.problems[0]
    assert SECRET not in " ".join(result.problems)
    assert SECRET not in json.dumps(lines)


# --- an installed plugin, run by the CLI ----------------------------------------------------


@pytest.fixture(scope="module")
def hostile_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """sidecar-hostile-plugin installed as a distribution with its entry point, for this
    module's processes only (``PYTHONPATH``); the venv is never touched."""
    site = tmp_path_factory.mktemp("hostile-plugin")
    shutil.copy(HOSTILE, site / HOSTILE.name)
    info = site / "sidecar_hostile_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sidecar-hostile-plugin\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text("[sidecar]\nhostile = sidecar_hostile\n")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    try:
        yield {"PYTHONPATH": path}
    finally:
        shutil.rmtree(site, ignore_errors=True)


def cli(command: str, at: str, env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """``sidecar COMMAND -c FILE`` with the hostile plugin misbehaving ``at`` (bounded)."""
    path = tmp / "sidecar.yaml"
    path.write_text(yaml.safe_dump({**EPHEMERAL, **CONFIG, **SHORT_GRACE}))
    return subprocess.run(  # noqa: S603 - our own entry point
        [SIDECAR, command, "-c", str(path)],
        env={**os.environ, **env, "SIDECAR_HOSTILE_AT": at},
        capture_output=True,
        text=True,
        timeout=60,
    )


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.parametrize("command", ["run", "check"])
def test_cli_front_factory_raising_exits_1_with_one_line_naming_the_plugin(
    hostile_env: dict[str, str], tmp_path: Path, command: str
) -> None:
    """`sidecar run` and `sidecar check` exit 1 with one error line naming plugin and front."""
    done = cli(command, "front-factory", hostile_env, tmp_path)
    assert done.returncode == 1, done.stderr
    assert error_lines(done) == [
        "error: plugin 'hostile': front 'hostile' failed to build: "
        "RuntimeError: the hostile front factory raised"
    ]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        ("api-abc", f"is written for plugin API abc; this sidecar has plugin API {API_VERSION}"),
        ("wrong-args", "failed to register: Plugin 'hostile' for hook 'sidecar_register_filters'"),
    ],
)
def test_cli_plugin_refused_at_load_exits_1_naming_plugin_and_distribution(
    hostile_env: dict[str, str], tmp_path: Path, at: str, reason: str
) -> None:
    """A wrong SIDECAR_API or hook signature: exit 1, the error names plugin and distribution."""
    done = cli("run", at, hostile_env, tmp_path)
    assert done.returncode == 1, done.stderr
    assert error_lines(done) == [f"error: plugin 'hostile' (sidecar-hostile-plugin 0.1.0) {reason}"]
    assert "Traceback" not in done.stderr


def test_cli_front_start_raising_exits_1_with_one_line_naming_the_plugin(
    hostile_env: dict[str, str], tmp_path: Path
) -> None:
    """A plugin front that fails to start: exit 1, one error line naming it, no traceback."""
    done = cli("run", "front-start", hostile_env, tmp_path)
    assert done.returncode == 1, done.stderr
    [line] = error_lines(done)
    assert "plugin 'hostile'" in line and "the hostile front refuses to start" in line
    assert "Traceback" not in done.stderr


def test_cli_sigterm_stops_the_sidecar_within_the_grace_when_a_front_drain_hangs(
    hostile_env: dict[str, str],
) -> None:
    """SIGTERM ends `sidecar run` within the grace (plus slack) even if a front never drains."""
    env = {**hostile_env, "SIDECAR_HOSTILE_AT": "front-drain-hang"}
    with SidecarProcess({**CONFIG, **SHORT_GRACE}, env=env) as p:
        assert p.terminate(timeout=GRACE + SLACK) == 0


def test_cli_sigterm_stops_a_sidecar_stuck_in_a_plugin_lifespan_at_start_up(
    hostile_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM ends `sidecar run` promptly even while a plugin's lifespan hangs at start-up."""
    entered = tmp_path / "entered"
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({**EPHEMERAL, **CONFIG, **SHORT_GRACE}))
    env = {**os.environ, **hostile_env, "SIDECAR_HOSTILE_AT": "lifespan-hang"}
    env["SIDECAR_HOSTILE_ENTERED"] = str(entered)
    proc = subprocess.Popen(  # noqa: S603 - our own entry point
        [SIDECAR, "run", "-c", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(entered.exists, timeout=15.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=GRACE + SLACK) in (0, 1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
