"""The ``request_headers`` filter: configured headers replace the app's, secrets resolved once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.app import Sidecar
from sidecar.errors import ConfigError
from sidecar.exchange import Exchange
from sidecar.filters import request_headers
from sidecar.filters.request_headers import UnusableHeaderValue
from sidecar.listeners.http import HTTP_FRONT
from sidecar.testing import isolated_plugin_host, make_exchange, make_route_context, responder

SECRET = "s3cr3t-Zq9-do-not-leak"


def upstream(headers: dict[str, object]) -> dict[str, object]:
    return {"url": "http://127.0.0.1:9", "request_headers": headers}


async def test_replaces_the_apps_header_of_the_same_name_and_keeps_the_rest() -> None:
    """The app cannot override an injected header, whatever the case it uses."""
    f = request_headers.factory(make_route_context(upstream({"X-Api-Key": "injected"})))
    assert f is not None
    seen: list[Exchange] = []
    ex = make_exchange(headers=[("X-API-KEY", "app-1"), ("x-api-key", "app-2"), ("accept", "*/*")])
    await f(ex, responder(seen=seen))
    assert seen[0].headers.get_all("x-api-key") == ["injected"]
    assert seen[0].headers.get("accept") == "*/*"


async def test_secret_refs_are_resolved_when_the_chain_is_composed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The environment is read once at start-up/reload, never per call."""
    monkeypatch.setenv("PAY_TOKEN", SECRET)
    f = request_headers.factory(
        make_route_context(upstream({"authorization": {"env": "PAY_TOKEN"}}))
    )
    assert f is not None
    monkeypatch.setenv("PAY_TOKEN", "changed-later")
    seen: list[Exchange] = []
    await f(make_exchange(headers={"authorization": "Bearer app"}), responder(seen=seen))
    assert seen[0].headers.get_all("authorization") == [SECRET]


async def test_file_secrets_are_read_and_stripped(tmp_path: Path) -> None:
    """A Kubernetes secret file with a trailing newline gives the bare value."""
    path = tmp_path / "token"
    path.write_text(SECRET + "\n")
    f = request_headers.factory(make_route_context(upstream({"x-token": {"file": str(path)}})))
    assert f is not None
    seen: list[Exchange] = []
    await f(make_exchange(), responder(seen=seen))
    assert seen[0].headers.get("x-token") == SECRET


def test_no_configured_headers_means_no_filter() -> None:
    """An upstream without `request_headers` pays nothing for this filter."""
    assert request_headers.factory(make_route_context()) is None


def test_a_missing_env_secret_fails_composition_with_the_key_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A missing secret stops start-up/reload saying which key and which variable."""
    monkeypatch.delenv("PAY_KEY", raising=False)
    headers = upstream({"x-api-key": {"env": "PAY_KEY"}})
    # the config loader already refuses it, at the same key path
    with pytest.raises(ConfigError) as loaded:
        make_route_context(headers, name="pay")
    assert [p.path for p in loaded.value.problems] == ["upstreams.pay.request_headers.x-api-key"]
    # and composition does too (the variable vanished between loading and composing)
    monkeypatch.setenv("PAY_KEY", SECRET)
    ctx = make_route_context(headers, name="pay")
    monkeypatch.delenv("PAY_KEY")
    with pytest.raises(UnusableHeaderValue) as info:
        request_headers.factory(ctx)
    assert info.value.key_path == "request_headers.x-api-key"
    sidecar = Sidecar(ctx.config, config_path="sidecar.yaml", plugin_host=isolated_plugin_host())
    sidecar._build_adapters()
    with pytest.raises(ConfigError) as refused:
        sidecar._composition(ctx.config, {}).chain(HTTP_FRONT, "pay", "pay", responder())
    (problem,) = refused.value.problems
    assert problem.path == "upstreams.pay.request_headers.x-api-key"
    assert "PAY_KEY" in problem.reason
    assert str(problem).startswith("sidecar.yaml: upstreams.pay.request_headers.x-api-key: ")


@pytest.mark.parametrize(
    "bad",
    [SECRET + "\r\nx-evil: 1", "a\nb" + SECRET, "\x00" + SECRET, SECRET + "€", SECRET + "\x7f"],
)
def test_a_value_that_could_split_the_request_head_is_refused_without_showing_it(
    tmp_path: Path, bad: str
) -> None:
    """A secret with a line break cannot inject headers, and the error never echoes the secret."""
    secret_file = tmp_path / "key"
    secret_file.write_text("fine")
    ctx = make_route_context(upstream({"x-api-key": {"file": str(secret_file)}}))
    secret_file.write_text(bad)  # rotated to something unusable before a reload composes
    with pytest.raises(UnusableHeaderValue) as info:
        request_headers.factory(ctx)
    assert str(secret_file) in str(info.value)
    assert info.value.key_path == "request_headers.x-api-key"
    assert SECRET not in str(info.value) and "€" not in str(info.value)
