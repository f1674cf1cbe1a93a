"""The filter without sockets: its config, what it adds, what it refuses, its place."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from sidecar import API_VERSION, Exchange, Phase, RouteContext
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, responder

import sidecar_jwt as plugin
from sidecar_jwt import (
    NAME,
    REFUSED,
    TAG_HEADER,
    FilterConfig,
    MissingHeader,
    make_filter,
)


def configured(section: dict[str, Any]) -> RouteContext:
    """The context a route's factory gets when the plugin's section is ``section``."""
    return make_route_context(config={"plugins": {NAME: section}}, plugins=[plugin])


async def test_a_tag_is_added_to_the_upstream_answer() -> None:
    """With a tag, each response carries the tag header and the upstream's answer unchanged."""
    tagger = make_filter(configured({"tag": "checked"}))
    assert tagger is not None
    seen: list[Exchange] = []
    response = await tagger(make_exchange("POST", "/orders"), responder(201, b"made", seen=seen))
    assert (response.status, response.body) == (201, b"made")
    assert response.headers.get(TAG_HEADER) == "checked"
    assert [(x.method, x.path) for x in seen] == [("POST", "/orders")]


async def test_a_call_without_the_required_header_is_refused_before_the_upstream() -> None:
    """With require_header, a call lacking it never reaches the upstream; one with it does."""
    guard = make_filter(configured({"require_header": "X-Tenant"}))
    assert guard is not None
    seen: list[Exchange] = []
    with pytest.raises(MissingHeader) as refused:
        await guard(make_exchange(path="/a"), responder(seen=seen))
    assert (refused.value.status, refused.value.code) == (403, REFUSED)
    assert seen == []
    response = await guard(make_exchange(path="/b", headers={"x-tenant": "acme"}), responder())
    assert response.status == 200
    assert TAG_HEADER not in response.headers


def test_without_a_section_no_route_gets_the_filter() -> None:
    """Installed but not configured, the plugin changes no call: no route has its filter."""
    assert make_filter(configured({})) is None


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"tagg": "x"}, "extra_forbidden"),
        ({"tag": "a\r\nset-cookie: x"}, "string_pattern_mismatch"),
        ({"require_header": "no spaces"}, "string_pattern_mismatch"),
    ],
)
def test_a_wrong_section_is_refused(section: dict[str, Any], problem: str) -> None:
    """A misspelt key or a value that is no header fails validation, not a call."""
    with pytest.raises(pydantic.ValidationError) as refused:
        FilterConfig.model_validate(section)
    assert [e["type"] for e in refused.value.errors()] == [problem]


def test_the_filter_sits_after_admission_and_before_retries() -> None:
    """The host places it in the EXTEND phase: after rate limits, outside the retries."""
    registries = isolated_plugin_host(plugin).registries
    assert registries.config[NAME] is FilterConfig
    assert registries.filters.phase(NAME) is Phase.EXTEND
    names = [r.name for r in registries.filters.ordered()]
    assert names.index("rate_limit") < names.index(NAME) < names.index("retry")


def test_the_plugin_declares_the_api_major_version_it_was_written_for() -> None:
    """SIDECAR_API matches this sidecar's plugin API major version, so the plugin loads."""
    assert str(plugin.SIDECAR_API) == API_VERSION.split(".")[0]
