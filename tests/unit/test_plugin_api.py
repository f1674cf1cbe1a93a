"""The public plugin API: one surface, versioned, called through pluggy, filters placed by phase."""

from __future__ import annotations

import logging
import types

import pluggy
import pytest

import sidecar
from sidecar import API_VERSION, FilterRegistry, Phase, PluginError, hookimpl
from sidecar.api import hookspecs
from sidecar.plugins import PluginHost
from sidecar.testing import isolated_plugin_host


def named(name: str, **attrs: object) -> types.SimpleNamespace:
    """A plugin object registered under ``name``."""
    return types.SimpleNamespace(name=name, **attrs)


def test_every_public_name_is_importable_from_sidecar() -> None:
    """A plugin imports everything from ``sidecar``, and the API says its version."""
    for name in sidecar.__all__:
        assert hasattr(sidecar, name), name
    assert API_VERSION.count(".") == 1 and API_VERSION.split(".")[0].isdigit()


def test_a_plugin_written_for_another_major_api_is_refused_naming_both_versions() -> None:
    """``SIDECAR_API = 2`` on a 1.x sidecar stops start-up with both versions in the message."""
    with pytest.raises(PluginError) as info:
        isolated_plugin_host(named("future", SIDECAR_API=2))
    assert (
        "'future'" in str(info.value) and "2" in str(info.value) and API_VERSION in str(info.value)
    )


def test_a_plugin_for_this_major_api_loads() -> None:
    """``SIDECAR_API = 1`` (or ``"1.0"``) is this API: the plugin loads."""
    host = isolated_plugin_host(named("current", SIDECAR_API="1.0"))
    assert "current" in [p.name for p in host.plugins()]


def test_implementing_a_deprecated_hook_logs_the_plugin_and_the_replacement(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A deprecated hook still works; its implementers are named in a warning with what to use."""

    class Specs:
        @hookspecs.hookspec(
            warn_on_impl=hookspecs.deprecated("sidecar_old_hook", "1.1", "sidecar_new_hook")
        )
        def sidecar_old_hook(self) -> None:
            """A hook on its way out."""

    original = pluggy.PluginManager.add_hookspecs

    def add_specs(pm: pluggy.PluginManager, module: object) -> None:
        original(pm, module)
        if module is hookspecs:
            original(pm, Specs)

    monkeypatch.setattr(pluggy.PluginManager, "add_hookspecs", add_specs)

    class Old:
        name = "oldtimer"

        @hookimpl
        def sidecar_old_hook(self) -> None:
            pass

    with caplog.at_level(logging.WARNING, logger="sidecar.plugins"):
        isolated_plugin_host(Old())
    lines = [r.getMessage() for r in caplog.records]
    assert any("'oldtimer'" in m and "sidecar_new_hook" in m and "1.1" in m for m in lines)


def test_registration_hooks_are_pluggy_calls_one_plugin_at_a_time() -> None:
    """pluggy's call monitoring sees each plugin's registration as its own hook call."""
    seen: list[tuple[str, list[str]]] = []

    class Mine:
        name = "mine"

        @hookimpl
        def sidecar_register_filters(self, registry: FilterRegistry) -> None:
            registry.add("mine", lambda ctx: None)

    original = PluginHost.__init__

    def watching(self: object, pm: pluggy.PluginManager, *args: object, **kw: object) -> None:
        pm.add_hookcall_monitoring(
            lambda name, impls, kwargs: seen.append((name, [i.plugin_name for i in impls])),
            lambda outcome, name, impls, kwargs: None,
        )
        original(self, pm, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PluginHost, "__init__", watching)
        host = isolated_plugin_host(Mine())
    filter_calls = [impls for name, impls in seen if name == "sidecar_register_filters"]
    assert ["mine"] in filter_calls and ["sidecar.filters"] in filter_calls
    assert all(len(impls) == 1 for impls in filter_calls)
    assert host.registries.filters.by_owner("mine")[0].name == "mine"


def test_a_filter_is_placed_by_phase_or_next_to_a_named_filter() -> None:
    """``phase=``, ``after=`` and ``before=`` put plugin filters where they say."""

    class Placed:
        name = "placed"

        @hookimpl
        def sidecar_register_filters(self, registry: FilterRegistry) -> None:
            registry.add("audit", lambda ctx: None, phase=Phase.ADMIT)
            registry.add("sign", lambda ctx: None, after="auth")
            registry.add("gate", lambda ctx: None, before="retry")
            registry.add("plain", lambda ctx: None)

    order = [r.name for r in isolated_plugin_host(Placed()).registries.filters.ordered()]
    # a phase alone: inside the phase's built-ins (after the concurrency limit), before EXTEND
    assert order.index("concurrency") < order.index("audit") < order.index("plain")
    assert order.index("auth") < order.index("sign") < order.index("upstream_span")
    assert order.index("timeout") < order.index("gate") < order.index("retry")
    assert order.index("concurrency") < order.index("plain") < order.index("timeout")


def test_placing_a_filter_next_to_a_filter_nobody_registered_names_both() -> None:
    """``after="nope"`` is refused with the plugin's and the missing filter's names."""

    class Lost:
        name = "lost"

        @hookimpl
        def sidecar_register_filters(self, registry: FilterRegistry) -> None:
            registry.add("orphan", lambda ctx: None, after="nope")

    with pytest.raises(PluginError) as info:
        isolated_plugin_host(Lost())
    assert "'orphan'" in str(info.value) and "'nope'" in str(info.value)


def test_a_filter_gives_one_place_only() -> None:
    """``phase`` with ``after`` is ambiguous and refused at registration."""
    registry = FilterRegistry()
    with pytest.raises(ValueError):
        registry.add("x", lambda ctx: None, phase=Phase.ADMIT, after="metrics")


def test_a_filter_placed_next_to_a_placed_filter_sits_next_to_it() -> None:
    """``after="a"`` where ``a`` is ``after="auth"``: auth, a, b, then the next built-in."""

    class Chain:
        name = "chain"

        @hookimpl
        def sidecar_register_filters(self, registry: FilterRegistry) -> None:
            registry.add("b", lambda ctx: None, after="a")
            registry.add("a", lambda ctx: None, after="auth")
            registry.add("z", lambda ctx: None, before="a")

    order = [r.name for r in isolated_plugin_host(Chain()).registries.filters.ordered()]
    at = order.index("auth")
    assert order[at : at + 4] == ["auth", "z", "a", "b"]
    assert order[at + 4] == "upstream_span"


def test_a_circle_of_placements_is_refused_naming_it() -> None:
    """``a`` after ``b`` and ``b`` after ``a`` cannot both hold: refused with the circle."""

    class Circle:
        name = "circle"

        @hookimpl
        def sidecar_register_filters(self, registry: FilterRegistry) -> None:
            registry.add("a", lambda ctx: None, after="b")
            registry.add("b", lambda ctx: None, after="a")

    with pytest.raises(PluginError, match="circle: a -> b -> a"):
        isolated_plugin_host(Circle())


class Greeting(sidecar.Model):
    text: str = "hi"


class Greeter:
    """A plugin with a config section and a shared counter, as a test uses one."""

    name = "greeter"
    COUNT: sidecar.SharedKey[list[int]] = sidecar.SharedKey("greeter.count")

    @hookimpl
    def sidecar_declare_config(self, registry: sidecar.ConfigRegistry) -> None:
        registry.add("greeter", Greeting)


def test_make_route_context_validates_a_plugins_section_given_its_plugin() -> None:
    """``plugins=[...]`` makes ``ctx.plugin_config`` typed; a section without it is an error."""
    from sidecar.testing import make_route_context

    config = {"plugins": {"greeter": {"text": "hello"}}}
    ctx = make_route_context(config=config, plugins=[Greeter()])
    assert ctx.plugin_config("greeter", Greeting).text == "hello"
    with pytest.raises(ValueError, match=r"plugins\.greeter: pass its plugin"):
        make_route_context(config=config)
    with pytest.raises(RuntimeError, match="make_route_context"):
        make_route_context().plugin_config("greeter", Greeting)


def test_shared_state_in_tests_is_kept_across_contexts_like_a_running_sidecar() -> None:
    """``shared=shared_state()``: two routes of one upstream get one object, readable back."""
    from sidecar.testing import make_route_context, shared_state

    shared = shared_state()
    a = make_route_context(route="a", shared=shared)
    b = make_route_context(route="b", shared=shared)
    counter = a.shared(Greeter.COUNT, None, lambda: [0])
    assert b.shared(Greeter.COUNT, None, lambda: [0]) is counter
    assert shared.build().get(Greeter.COUNT, "test") is counter


def test_sidecar_plugins_says_where_a_placed_filter_landed() -> None:
    """``after="peer_allow"`` prints the order it landed at and what it was placed next to."""

    class Placed:
        name = "placed"

        @hookimpl
        def sidecar_register_filters(self, registry: FilterRegistry) -> None:
            registry.add("tenant", lambda ctx: None, after="peer_allow")

    [info] = [p for p in isolated_plugin_host(Placed()).plugins() if p.name == "placed"]
    assert info.registered == ["filter tenant (order 310, after peer_allow)"]
