"""The hello plugin without sockets: its config model, its filter, and what it registers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pydantic
import pytest
import sidecar_hello
from sidecar_hello import HelloConfig, make_filter

from sidecar import API_VERSION, Exchange, Phase, RouteContext
from sidecar.testing import make_exchange, make_route_context, responder


def with_hello(config: HelloConfig) -> RouteContext:
    """The context a route's factory gets when ``plugins.hello`` is ``config``."""
    return dataclasses.replace(make_route_context(), plugin_sections={"hello": config})


async def test_a_configured_greeting_is_added_to_the_upstream_answer() -> None:
    """With a greeting, each response carries `x-hello` and the upstream's answer unchanged."""
    hello = make_filter(with_hello(HelloConfig(greeting="hi there")))
    assert hello is not None
    seen: list[Exchange] = []
    call_next = responder(201, b"made", {"x-upstream": "1"}, seen=seen)
    response = await hello(make_exchange("POST", "/orders", body=b"{}"), call_next)
    assert (response.status, response.body) == (201, b"made")
    assert response.headers.get("x-hello") == "hi there"
    assert response.headers.get("x-upstream") == "1"
    assert [(x.method, x.path) for x in seen] == [("POST", "/orders")]


def test_without_a_greeting_no_route_gets_the_filter() -> None:
    """Installed but not configured, the plugin changes no call: no route has its filter."""
    assert make_filter(with_hello(HelloConfig())) is None


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"greting": "hi"}, "extra_forbidden"),
        ({"greeting": "hi\r\nset-cookie: x"}, "string_pattern_mismatch"),
        ({"greeting": ""}, "string_pattern_mismatch"),
    ],
)
def test_a_wrong_section_is_refused(section: dict[str, Any], problem: str) -> None:
    """A misspelt key or a greeting that is no header value fails validation, not a call."""
    with pytest.raises(pydantic.ValidationError) as refused:
        HelloConfig.model_validate(section)
    assert [e["type"] for e in refused.value.errors()] == [problem]


def test_the_plugin_registers_its_section_and_a_filter_in_the_extend_phase(
    plugin_host: Callable[..., Any],
) -> None:
    """The host finds `plugins.hello`, and places the filter after admission, before retries."""
    registries = plugin_host(sidecar_hello).registries
    assert registries.config["hello"] is HelloConfig
    assert registries.filters.phase("hello") is Phase.EXTEND
    names = [r.name for r in registries.filters.ordered()]
    assert names.index("rate_limit") < names.index("hello") < names.index("retry")


def test_the_plugin_declares_the_api_major_version_it_was_written_for() -> None:
    """`SIDECAR_API` matches this sidecar's plugin API major version, so the plugin loads."""
    assert str(sidecar_hello.SIDECAR_API) == API_VERSION.split(".")[0]
