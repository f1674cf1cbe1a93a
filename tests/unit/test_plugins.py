"""The plugin host: how plugins are found, ordered, refused and named when they fail."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

import sidecar.plugins
from sidecar import (
    Exchange,
    Handler,
    Headers,
    PluginError,
    Response,
    RouteContext,
    compose,
    hookimpl,
)
from sidecar.api import Adapter
from sidecar.api.phases import (
    ORDER_DEFAULT,
)
from sidecar.cli import main
from sidecar.errors import RegistryConflict
from sidecar.plugins import BUILTIN_PLUGINS, PluginHost, make_plugin_host
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, responder

# --- helpers: plugins as modules, and installed entry points without installing anything ------


def make_plugin(name: str, **hooks: Callable[..., Any]) -> ModuleType:
    """A plugin module named ``name`` whose hook implementations are ``hooks``."""
    module = ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def filters_plugin(name: str, *filter_names: str, order: int = ORDER_DEFAULT) -> ModuleType:
    def register(registry: Any) -> None:
        for f in filter_names:
            registry.add(f, lambda ctx: None, order=order)

    return make_plugin(name, sidecar_register_filters=register)


@dataclass
class FakeDist:
    name: str
    version: str


class FakeEntryPoint:
    """What ``importlib.metadata`` yields for an installed distribution's entry point."""

    def __init__(
        self,
        name: str,
        plugin: object = None,
        dist: tuple[str, str] = ("sidecar-x-plugin", "1.2.3"),
        error: Exception | None = None,
    ) -> None:
        self.name = name
        self.dist = FakeDist(*dist)
        self.plugin = plugin
        self.error = error
        self.loaded = False

    def load(self) -> object:
        self.loaded = True
        if self.error is not None:
            raise self.error
        return self.plugin


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> list[FakeEntryPoint]:
    """The ``sidecar`` entry points the host will find (empty: none of the real ones)."""
    eps: list[FakeEntryPoint] = []
    monkeypatch.setattr(sidecar.plugins, "entry_points", lambda group: list(eps))
    return eps


@contextmanager
def records(logger: str) -> Iterator[list[logging.LogRecord]]:
    """Records logged on ``logger``, whatever its parents' propagation is set to."""
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    log = logging.getLogger(logger)
    handler, level = Keep(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def hello_plugin() -> ModuleType:
    class HelloConfig(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        greeting: str = "hello"

    def declare(registry: Any) -> None:
        registry.add("hello", HelloConfig)

    def register(registry: Any) -> None:
        registry.add("hello", lambda ctx: None)

    return make_plugin(
        "sidecar_hello", sidecar_declare_config=declare, sidecar_register_filters=register
    )


# --- what gets loaded, in which order --------------------------------------------------------


def test_entry_point_plugins_and_builtins_are_loaded_and_listed_with_their_source(
    installed: list[FakeEntryPoint],
) -> None:
    """`sidecar plugins` shows each plugin, its distribution and version, and what it registered."""
    installed.append(FakeEntryPoint("hello", hello_plugin(), ("sidecar-hello-plugin", "0.1.0")))
    host = make_plugin_host()
    infos = {p.name: p for p in host.plugins()}
    assert list(infos) == ["hello", *BUILTIN_PLUGINS]
    assert infos["hello"].source == "sidecar-hello-plugin 0.1.0"
    assert infos["hello"].registered == ["filter hello (order 500)", "config plugins.hello"]
    assert infos["sidecar.filters"].source == "built-in"
    assert "adapter http" in infos["sidecar.adapters.http"].registered
    assert "admin GET /plugins" in infos["sidecar.admin_routes"].registered


def test_hookspecs_are_in_place_before_entry_points_load(installed: list[FakeEntryPoint]) -> None:
    """A plugin whose hook takes an argument the spec does not have is refused when it registers."""

    def register(registry: Any, colour: str) -> None:
        pass

    installed.append(FakeEntryPoint("odd", make_plugin("odd", sidecar_register_filters=register)))
    with pytest.raises(PluginError, match=r"(?s)plugin 'odd' \(sidecar-x-plugin 1.2.3\).*colour"):
        make_plugin_host()


def test_third_party_hooks_run_before_trylast_builtins() -> None:
    """Built-in defaults are `trylast`, so a plugin's registration runs before theirs."""
    host = isolated_plugin_host(filters_plugin("mine", "mine-filter"))
    owners = [r.owner for r in host.registries.filters.registrations()]
    assert owners == ["mine", *["sidecar.filters"] * (len(owners) - 1)]


def test_disabled_entry_point_is_never_imported(installed: list[FakeEntryPoint]) -> None:
    """`plugins.disabled: [name]` keeps a plugin out, without even importing it."""
    ep = FakeEntryPoint("broken", error=RuntimeError("must not be imported"))
    installed.append(ep)
    host = make_plugin_host(["broken"])
    assert not ep.loaded
    assert "broken" not in [p.name for p in host.plugins()]
    assert host.disabled == ("broken",)


def test_disabled_builtin_module_is_not_registered() -> None:
    """A built-in is disabled by its module name, and what it registered is gone."""
    host = make_plugin_host(["sidecar.adapters.echo"], load_entry_points=False)
    assert "echo" not in host.registries.adapters
    assert "sidecar.adapters.echo" not in [p.name for p in host.plugins()]


def test_disabling_an_unknown_name_is_a_warning_not_an_error(
    installed: list[FakeEntryPoint],
) -> None:
    """A misspelt name in `plugins.disabled` is logged, so a shared config still starts."""
    with records("sidecar.plugins") as seen:
        host = make_plugin_host(["helo"])
    assert host.disabled == ("helo",)
    assert [r.getMessage() for r in seen] == ["plugins.disabled names no installed plugin: helo"]


def test_same_plugin_name_from_two_distributions_is_refused(
    installed: list[FakeEntryPoint],
) -> None:
    """Two distributions claiming one plugin name: refused, naming both distributions."""
    installed.append(FakeEntryPoint("hello", make_plugin("a"), ("sidecar-hello", "1.0")))
    installed.append(FakeEntryPoint("hello", make_plugin("b"), ("other-hello", "2.0")))
    with pytest.raises(
        PluginError, match="'hello' is taken twice: by sidecar-hello 1.0 and by other-hello 2.0"
    ):
        make_plugin_host()


# --- duplicates name both owners -------------------------------------------------------------


def test_two_plugins_registering_one_filter_name_are_refused_naming_both() -> None:
    """Filter "x" registered by plugins a and b: start-up stops naming both."""
    with pytest.raises(RegistryConflict) as e:
        isolated_plugin_host(filters_plugin("a", "x"), filters_plugin("b", "x"))
    assert str(e.value) == "filter 'x' registered twice: by plugin 'b' and by plugin 'a'"


def test_a_plugin_cannot_take_a_builtin_filter_name() -> None:
    """A plugin registering "timeout" is refused, naming the built-in plugin that owns it."""
    with pytest.raises(RegistryConflict, match="'timeout'.*'mine'.*'sidecar.filters'"):
        isolated_plugin_host(filters_plugin("mine", "timeout"))


@pytest.mark.parametrize(
    ("hook", "add", "message"),
    [
        (
            "sidecar_declare_config",
            lambda registry: registry.add("s", BaseModel),
            "config section 's'",
        ),
        ("sidecar_register_adapters", lambda registry: registry.add("a", Adapter), "adapter 'a'"),
        (
            "sidecar_register_lifespans",
            lambda registry: registry.add("l", lambda s: None),
            "lifespan 'l'",
        ),
        (
            "sidecar_register_admin_routes",
            lambda registry: registry.add("get", "/x", lambda q: None),
            "admin route 'GET /x'",
        ),
    ],
)
def test_every_registry_refuses_a_duplicate_naming_both_owners(
    hook: str, add: Callable[[Any], None], message: str
) -> None:
    """Config sections, adapters, lifespans and admin routes: a second owner is refused."""
    with pytest.raises(RegistryConflict, match=f"{message} registered twice: by plugin 'p2'"):
        isolated_plugin_host(make_plugin("p1", **{hook: add}), make_plugin("p2", **{hook: add}))


def test_duplicate_plugin_stops_the_cli_with_exit_1_naming_both(
    installed: list[FakeEntryPoint], capsys: pytest.CaptureFixture[str]
) -> None:
    """`sidecar plugins` with two plugins claiming filter "x": exit 1, both named, no traceback."""
    installed.append(FakeEntryPoint("a", filters_plugin("a", "x")))
    installed.append(FakeEntryPoint("b", filters_plugin("b", "x")))
    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert err == "error: filter 'x' registered twice: by plugin 'b' and by plugin 'a'\n"


# --- typos and misuse fail at start-up --------------------------------------------------------


def test_misspelt_hook_name_fails_naming_the_plugin_and_the_likely_hook(
    installed: list[FakeEntryPoint],
) -> None:
    """`sidecar_register_filter` (no s) is no hook: refused with the plugin and a suggestion."""
    plugin = make_plugin("typo", sidecar_register_filter=lambda registry: None)
    installed.append(FakeEntryPoint("typo", plugin))
    with pytest.raises(PluginError) as e:
        make_plugin_host()
    assert str(e.value) == (
        "plugin 'typo' (sidecar-x-plugin 1.2.3) implements 'sidecar_register_filter', "
        "which is no hook; did you mean 'sidecar_register_filters'?"
    )


def test_undecorated_sidecar_function_counts_as_a_hook_so_its_typo_is_caught() -> None:
    """A forgotten `@hookimpl` is not silently ignored: `sidecar_*` functions are hooks."""
    plugin = ModuleType("bare")
    plugin.sidecar_register_filterz = lambda registry: None  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="'bare'.*'sidecar_register_filterz'"):
        isolated_plugin_host(plugin)

    def register(registry: Any) -> None:
        registry.add("bare-filter", lambda ctx: None)

    plugin = ModuleType("bare")
    plugin.sidecar_register_filters = register  # type: ignore[attr-defined]
    assert "bare-filter" in isolated_plugin_host(plugin).registries.filters


def test_wrapper_implementations_are_refused() -> None:
    """Registration hooks are called one plugin at a time, so a wrapper cannot work: refused."""
    plugin = ModuleType("wrapping")

    def sidecar_register_filters(registry: Any) -> Iterator[None]:
        yield

    plugin.sidecar_register_filters = hookimpl(wrapper=True)(sidecar_register_filters)  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="'wrapping'.*sidecar_register_filters is a wrapper"):
        isolated_plugin_host(plugin)


def test_hook_implementation_may_take_no_arguments() -> None:
    """pluggy lets an implementation ignore the hook's arguments; so does the host."""
    called: list[bool] = []
    isolated_plugin_host(make_plugin("quiet", sidecar_register_filters=lambda: called.append(True)))
    assert called == [True]


def test_registries_are_closed_once_start_up_registered_everything() -> None:
    """A plugin that keeps its registry and adds later is refused: nothing registers at run time."""
    kept: list[Any] = []
    isolated_plugin_host(
        make_plugin("sneaky", sidecar_register_filters=lambda registry: kept.append(registry))
    )
    with pytest.raises(RuntimeError, match="only inside registration hooks"):
        kept[0].add("late", lambda ctx: None)


# --- a plugin that raises at start-up stops it, with its name ---------------------------------


def test_plugin_raising_at_import_stops_start_up_naming_it(
    installed: list[FakeEntryPoint],
) -> None:
    """An entry point whose import raises: the error names the plugin and its distribution."""
    installed.append(FakeEntryPoint("broken", error=ImportError("no module named 'lxml'")))
    with pytest.raises(PluginError) as e:
        make_plugin_host()
    assert str(e.value) == (
        "plugin 'broken' (sidecar-x-plugin 1.2.3) failed to load: ImportError: "
        "no module named 'lxml'"
    )


def test_plugin_raising_while_registering_stops_start_up_naming_it(
    installed: list[FakeEntryPoint],
) -> None:
    """A registration hook that raises: the error names the plugin, its source and the hook."""

    def register(registry: Any) -> None:
        raise KeyError("colour")

    installed.append(FakeEntryPoint("broken", make_plugin("b", sidecar_register_filters=register)))
    with pytest.raises(PluginError) as e:
        make_plugin_host()
    assert str(e.value) == (
        "plugin 'broken' (sidecar-x-plugin 1.2.3) failed in sidecar_register_filters: "
        "KeyError: 'colour'"
    )


def test_cli_exits_1_naming_a_plugin_that_fails_to_load(
    installed: list[FakeEntryPoint],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`sidecar run`, `check` and `plugins` all exit 1 with one line naming the broken plugin."""
    monkeypatch.setattr("sidecar.telemetry.logs.configure_logging", lambda *a, **k: None)
    installed.append(FakeEntryPoint("broken", error=RuntimeError("boom")))
    config = tmp_path / "sidecar.yaml"
    config.write_text("admin: {address: 127.0.0.1:0}\nhttp: {address: 127.0.0.1:0}\n")
    for argv in (["run", "-c", str(config)], ["check", "-c", str(config)], ["plugins"]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err == (
            "error: plugin 'broken' (sidecar-x-plugin 1.2.3) failed to load: RuntimeError: boom\n"
        ), argv


def test_cli_plugins_prints_each_plugin_its_source_and_registrations(
    installed: list[FakeEntryPoint], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`sidecar plugins -c FILE` lists plugins, registrations, disabled names and filter order."""
    installed.append(FakeEntryPoint("hello", hello_plugin(), ("sidecar-hello-plugin", "0.1.0")))
    config = tmp_path / "sidecar.yaml"
    config.write_text("plugins: {disabled: [sidecar.adapters.echo]}\n")
    assert main(["plugins", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "hello  (sidecar-hello-plugin 0.1.0)\n"
        "    filter hello (order 500)\n"
        "    config plugins.hello\n"
        "sidecar.adapters.http  (built-in)\n"
        "    adapter http\n"
    )
    assert "sidecar.adapters.echo  (disabled by plugins.disabled)\n" in out
    last = out.splitlines()[-1]
    assert last.startswith("filters, outermost first: rescue, access_log, tracing, metrics, ")
    names = last.partition(": ")[2].split(", ")
    # the plugin's filter (order 500) between the built-ins it was placed between
    assert names.index("metrics") < names.index("hello") < names.index("timeout")
    assert names[-1] == "request_headers"


def test_cli_check_validates_a_plugin_section_with_the_plugin_model(
    installed: list[FakeEntryPoint], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A misspelt key under `plugins.hello` fails `sidecar check` (exit 2) with its key path."""
    installed.append(FakeEntryPoint("hello", hello_plugin()))
    config = tmp_path / "sidecar.yaml"
    config.write_text("plugins:\n  hello: {greting: hi}\n")
    assert main(["check", "-c", str(config)]) == 2
    assert f"{config}: plugins.hello.greting: unknown key" in capsys.readouterr().err


def test_section_of_a_disabled_plugin_may_stay_in_the_config(
    installed: list[FakeEntryPoint], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Disabling a plugin does not force deleting its section: `sidecar check` passes."""
    installed.append(FakeEntryPoint("hello", hello_plugin()))
    config = tmp_path / "sidecar.yaml"
    config.write_text("plugins:\n  disabled: [hello]\n  hello: {greeting: hi}\n")
    assert main(["check", "-c", str(config)]) == 0, capsys.readouterr().err


# --- errors while serving: logged with the plugin's name, the sidecar keeps serving -----------


class Broken(Exception):
    pass


def raising_filter_plugin(name: str = "flaky") -> ModuleType:
    def make(ctx: RouteContext) -> Any:
        async def explode(exchange: Exchange, call_next: Handler) -> Response:
            if exchange.path == "/boom":
                raise Broken("kaput")
            return await call_next(exchange)

        return explode

    return make_plugin(
        name, sidecar_register_filters=lambda registry: registry.add("explode", make)
    )


def compose_route(host: PluginHost, route: str = "payments") -> Handler:
    """The route's handler, composed from the host's filters as the sidecar composes it."""
    base = make_route_context(name=route)
    ctx = RouteContext(
        route=route,
        upstream_name=route,
        upstream=base.upstream,
        config=base.config,
        metrics=base.metrics,
        rescue_hook=host.rescue_hook(),
        blame=host.blame,
    )
    built = (r.item(ctx) for r in host.registries.filters.ordered())
    return compose([f for f in built if f is not None], responder(200, b"ok"))


async def test_filter_raising_at_request_time_is_a_500_logged_with_plugin_filter_and_route() -> (
    None
):
    """A plugin filter that raises: 500 `internal`, a log line naming it, the next call works."""
    handler = compose_route(isolated_plugin_host(raising_filter_plugin()))
    with records("sidecar.rescue") as seen:
        failed = await handler(make_exchange(path="/boom"))
    assert failed.status == 500
    assert failed.headers.get("x-sidecar-error") == "internal"
    [line] = [r for r in seen if r.levelno == logging.ERROR]
    fields = line.fields  # type: ignore[attr-defined]
    assert (fields["plugin"], fields["filter"], fields["route"]) == ("flaky", "explode", "payments")
    assert line.exc_info is not None and isinstance(line.exc_info[1], Broken)
    ok = await handler(make_exchange(path="/fine"))
    assert (ok.status, ok.body) == (200, b"ok")


async def test_error_raised_in_a_library_called_by_a_filter_is_blamed_on_that_filter() -> None:
    """The log names the plugin whose code called into the library, not the library."""

    def make(ctx: RouteContext) -> Any:
        async def parse(exchange: Exchange, call_next: Handler) -> Response:
            int(exchange.path.strip("/"))  # ValueError raised inside the int() builtin
            return await call_next(exchange)

        return parse

    host = isolated_plugin_host(
        make_plugin("parser", sidecar_register_filters=lambda registry: registry.add("p", make))
    )
    with records("sidecar.rescue") as seen:
        resp = await compose_route(host)(make_exchange(path="/not-a-number"))
    assert resp.status == 500
    fields = seen[-1].fields  # type: ignore[attr-defined]
    assert (fields["plugin"], fields["filter"]) == ("parser", "p")


async def test_rescue_hook_turns_an_exception_into_a_response() -> None:
    """`sidecar_rescue` answers for errors it knows; the first non-None answer is used."""

    def rescue(exchange: Exchange, error: BaseException) -> Response | None:
        if isinstance(error, Broken):
            return Response(503, Headers([("x-rescued-by", "medic")]), b"try later\n")
        return None

    host = isolated_plugin_host(
        raising_filter_plugin(), make_plugin("medic", sidecar_rescue=rescue)
    )
    assert "rescue hook" in {p.name: p for p in host.plugins()}["medic"].registered
    with records("sidecar.rescue") as seen:
        resp = await compose_route(host)(make_exchange(path="/boom"))
    assert (resp.status, resp.headers.get("x-rescued-by"), resp.body) == (
        503,
        "medic",
        b"try later\n",
    )
    assert seen == []  # rescued: nothing to report


async def test_rescue_hook_that_raises_is_logged_with_its_name_and_the_next_one_answers() -> None:
    """A broken `sidecar_rescue` does not hide the others: it is logged and skipped."""

    def clumsy(exchange: Exchange, error: BaseException) -> Response | None:
        raise AttributeError("oops")

    def steady(error: BaseException) -> Response | None:
        return Response(502, Headers(), b"steady\n")

    host = isolated_plugin_host(
        raising_filter_plugin(),
        make_plugin("steady", sidecar_rescue=steady),
        make_plugin("clumsy", sidecar_rescue=clumsy),  # registered last, so called first
    )
    with records("sidecar.plugins") as seen:
        resp = await compose_route(host)(make_exchange(path="/boom"))
    assert (resp.status, resp.body) == (502, b"steady\n")
    [line] = seen
    assert line.getMessage() == "plugin 'clumsy': sidecar_rescue raised"
    assert line.fields["plugin"] == "clumsy"  # type: ignore[attr-defined]


def test_blame_names_the_plugin_of_a_hook_or_module_and_nothing_for_others() -> None:
    """Errors from a plugin's hook or package are attributed to it; the core's are not."""
    module = ModuleType("sidecar_blamed")
    exec(  # a plugin package whose own code raises, without writing files
        "def helper():\n    raise LookupError('inside the plugin package')\n",
        module.__dict__,
    )
    host = isolated_plugin_host(module)

    def raised(fn: Callable[[], object]) -> BaseException:
        try:
            fn()
        except Exception as e:
            return e
        raise AssertionError("did not raise")

    assert host.blame(raised(module.helper)) == {"plugin": "sidecar_blamed"}
    assert host.blame(raised(lambda: {}["x"])) is None
