"""Where each effective setting of a route comes from (route, upstream, default, plugin), and
``/explain``'s chain built from it, without a running sidecar."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from sidecar import FilterRegistry, Phase, RouteContext, hookimpl
from sidecar.api import ConfigRegistry
from sidecar.config import validate_data, validate_plugin_sections
from sidecar.config.provenance import leaves, section_settings, upstream_setting
from sidecar.explain import ExplainError, explain, render_text
from sidecar.plugins import make_plugin_host

URL = "http://pay.internal:8080"


def config_of(data: dict[str, Any]) -> Any:
    return validate_data(data, "test.yaml", resolve_secrets=False)


PAYMENTS = {
    "url": URL,
    "retry": {"attempts": 3, "backoff": {"base": "50ms"}},
    "auth": {"type": "bearer", "token": {"env": "PAY_TOKEN"}},
}
SEARCH = {
    "name": "search",
    "match": {"path_prefix": "/search"},
    "upstream": "payments",
    "timeout": "800ms",
    "retry": {"attempts": 2},
}


@pytest.fixture(autouse=True)
def pay_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bearer token's variable (plugin checks read credentials once, as start-up does)."""
    monkeypatch.setenv("PAY_TOKEN", "tok-never-shown")


def test_an_upstream_setting_left_unset_is_the_default() -> None:
    """Keys nobody wrote are ``default``, down to each leaf."""
    config = config_of({"upstreams": {"payments": {"url": URL}}})
    setting = upstream_setting("retry", config.upstreams["payments"], None)
    assert set(setting.sources.values()) == {"default"}
    assert setting.sources["retry.backoff.base"] == "default"
    assert setting.value["attempts"] == 3


def test_keys_the_upstream_sets_are_upstream_and_the_rest_default() -> None:
    """Inside a block the upstream wrote, only the keys it wrote are ``upstream``."""
    config = config_of({"upstreams": {"payments": PAYMENTS}})
    setting = upstream_setting("retry", config.upstreams["payments"], None)
    assert setting.sources["retry.attempts"] == "upstream"
    assert setting.sources["retry.backoff.base"] == "upstream"
    assert setting.sources["retry.backoff.max"] == "default"
    assert setting.sources["retry.per_try_timeout"] == "default"
    timeout = upstream_setting("timeout", config.upstreams["payments"], None)
    assert (timeout.value, timeout.sources) == (15.0, {"timeout": "default"})


def test_a_route_override_replaces_the_upstreams_block_whole() -> None:
    """A route's ``retry`` is the route's: what it left unset is the default, not the upstream's
    (the upstream's ``backoff.base`` no longer applies), exactly as the chain merges it."""
    config = config_of({"upstreams": {"payments": PAYMENTS}, "routes": [SEARCH]})
    up, rc = config.upstreams["payments"], config.routes[0]
    retry = upstream_setting("retry", up, rc)
    assert retry.sources["retry.attempts"] == "route"
    assert retry.value["attempts"] == 2
    assert (retry.sources["retry.backoff.base"], retry.value["backoff"]["base"]) == (
        "default",
        0.025,
    )
    timeout = upstream_setting("timeout", up, rc)
    assert (timeout.value, timeout.sources["timeout"]) == (0.8, "route")
    # not overridable per route: the upstream's
    breaker = upstream_setting("circuit_breaker", up, rc)
    assert set(breaker.sources.values()) == {"default"}


def test_secrets_are_dumped_as_references_only() -> None:
    """A credential's secret is shown as its reference, as ``/config`` shows it."""
    config = config_of({"upstreams": {"payments": PAYMENTS}})
    auth = upstream_setting("auth", config.upstreams["payments"], None)
    assert auth.value["token"] == {"env": "PAY_TOKEN"}
    assert auth.sources["auth.token"] == "upstream"
    assert ("auth.token", {"env": "PAY_TOKEN"}, "upstream") in leaves(auth)


class Greeting(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    greeting: str | None = None
    loud: bool = False


class GreeterPlugin:
    """A plugin with a config section and a filter in the extend phase."""

    @hookimpl
    def sidecar_declare_config(self, registry: ConfigRegistry) -> None:
        registry.add("greeter", Greeting)

    @hookimpl
    def sidecar_register_filters(self, registry: FilterRegistry) -> None:
        def factory(ctx: RouteContext) -> None:
            return None

        registry.add("greeter", factory, phase=Phase.EXTEND)


def test_plugin_keys_set_in_the_file_are_plugin() -> None:
    """A plugin section's keys the file set are ``plugin``, the others ``default``."""
    setting = section_settings("plugins.greeter", Greeting(greeting="hi"), "plugin")
    assert setting.sources == {
        "plugins.greeter.greeting": "plugin",
        "plugins.greeter.loud": "default",
    }


def _explained(data: dict[str, Any], **which: str) -> dict[str, Any]:
    host = make_plugin_host(load_entry_points=False, extra_plugins=[("greeter", GreeterPlugin())])
    config = validate_data(data, "test.yaml", host.schemas(), resolve_secrets=False)
    sections = validate_plugin_sections(config, host.schemas(), "test.yaml")
    registries = host.registries
    return explain(
        config,
        registries.filters,
        sources={p.name: p.source for p in host.plugins()},
        sections=sections,
        declared={r.name: r.owner for r in registries.config.registrations()},
        **which,
    )


FILE = {
    "upstreams": {"payments": {**PAYMENTS, "fault": {"abort": {"status": 503, "percent": 5}}}},
    "routes": [SEARCH],
    "plugins": {"greeter": {"greeting": "hi"}},
}


def test_explain_lists_the_chain_in_order_with_who_and_where_from() -> None:
    """Each filter the route runs, outermost first, its registrar, settings and their sources."""
    answer = _explained(FILE, route="search")
    names = [f["name"] for f in answer["filters"]]
    assert names == [
        "rescue",
        "access_log",
        "metrics",
        "concurrency",
        "greeter",
        "timeout",
        "fault",
        "retry",
        "circuit_breaker",
        "auth",
    ]
    orders = [f["order"] for f in answer["filters"]]
    assert orders == sorted(orders)
    by = {f["name"]: f for f in answer["filters"]}
    assert by["retry"]["registered_by"] == "core"
    assert by["retry"]["phase"] == "resilience"
    assert by["retry"]["sources"]["retry.attempts"] == "route"
    assert by["timeout"]["sources"] == {"timeout": "route"}
    assert by["fault"]["sources"]["fault.abort.percent"] == "upstream"
    greeter = by["greeter"]
    assert (greeter["registered_by"], greeter["phase"], greeter["decided_by_plugin"]) == (
        "greeter",
        "extend",
        True,
    )
    assert greeter["settings"] == {"plugins.greeter": {"greeting": "hi", "loud": False}}
    assert greeter["sources"]["plugins.greeter.greeting"] == "plugin"
    assert by["concurrency"]["sources"]["concurrency.max_in_flight"] == "default"


def test_explain_by_upstream_shows_the_upstreams_own_settings() -> None:
    """``upstream=NAME`` is the ``/<upstream>/`` route: no route override applies."""
    by = {f["name"]: f for f in _explained(FILE, upstream="payments")["filters"]}
    assert by["retry"]["settings"]["retry"]["attempts"] == 3
    assert by["retry"]["sources"]["retry.attempts"] == "upstream"
    assert by["timeout"]["sources"] == {"timeout": "default"}


def test_explain_leaves_out_filters_the_config_turns_off() -> None:
    """No fault, auth or rate limit configured: they are not in the chain, nor in the answer."""
    names = [
        f["name"] for f in _explained({"upstreams": {"p": {"url": URL}}}, upstream="p")["filters"]
    ]
    assert not {"fault", "auth", "rate_limit", "global_rate_limit"} & set(names)
    off = {"upstreams": {"p": {"url": URL, "retry": {"enabled": False}}}}
    assert "retry" not in [f["name"] for f in _explained(off, upstream="p")["filters"]]


@pytest.mark.parametrize(
    ("which", "status", "says"),
    [
        ({"route": "nope"}, 404, "no route named 'nope'"),
        ({"upstream": "nope"}, 404, "no upstream named 'nope'"),
        ({}, 400, "exactly one"),
        ({"route": "search", "upstream": "payments"}, 400, "exactly one"),
    ],
)
def test_explain_refuses_unknown_names_and_bad_parameters(
    which: dict[str, str], status: int, says: str
) -> None:
    """An unknown name is a 404 naming what exists; neither or both parameters a 400."""
    with pytest.raises(ExplainError) as raised:
        _explained(FILE, **which)
    assert raised.value.status == status
    assert says in raised.value.message


def test_the_text_table_has_a_line_per_setting_with_its_source() -> None:
    """``format=text`` is a table an operator reads: filter, order, registrar, setting, source."""
    text = render_text(_explained(FILE, route="search"))
    lines = text.splitlines()
    assert lines[0].startswith("route 'search' -> upstream 'payments'")
    retry = next(line for line in lines if " retry " in line)
    assert "core" in retry and "retry.enabled" in retry
    assert any("retry.attempts" in line and line.rstrip().endswith("route") for line in lines)
    assert any("plugins.greeter.greeting" in line and '"hi"' in line for line in lines)
    assert "PAY_TOKEN" in text and "tok-never-shown" not in text  # the reference, never a value


def test_the_text_table_puts_an_unconfigured_plugin_on_one_line() -> None:
    """A plugin whose section the config never mentions is one line in the table (its defaults
    would bury the route's own chain); the JSON answer still lists them, and a configured
    section still shows each setting with its source."""
    unconfigured = {k: v for k, v in FILE.items() if k != "plugins"}
    answer = _explained(unconfigured, route="search")
    greeter = next(f for f in answer["filters"] if f["name"] == "greeter")
    assert set(greeter["sources"].values()) == {"default"} and greeter["settings"]
    lines = render_text(answer).splitlines()
    shown = [line for line in lines if "plugins.greeter" in line]
    assert len(shown) == 1 and "plugins.greeter: all defaults" in shown[0], shown
    configured = render_text(_explained(FILE, route="search"))
    assert "plugins.greeter.greeting" in configured and "all defaults" not in configured


def test_sidecar_explain_prints_the_chain_from_a_file(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sidecar explain -c FILE`` answers offline what ``/explain`` answers, secrets as refs."""
    import json

    import yaml

    from sidecar.cli import main

    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({"upstreams": {"payments": PAYMENTS}, "routes": [SEARCH]}))
    assert main(["explain", "-c", str(path), "--route", "search"]) == 0
    answer = json.loads(capsys.readouterr().out)
    by = {f["name"]: f for f in answer["filters"]}
    assert by["retry"]["sources"]["retry.attempts"] == "route"
    assert by["auth"]["settings"]["auth"]["token"] == {"env": "PAY_TOKEN"}
    assert main(["explain", "-c", str(path), "--upstream", "payments", "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert "retry.backoff.base" in text and "tok-never-shown" not in text
    assert main(["explain", "-c", str(path), "--route", "nope"]) == 1
    assert "no route named 'nope'" in capsys.readouterr().err
