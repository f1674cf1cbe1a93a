"""``RouteTable``: only configured upstreams are reachable, and each by the documented rule."""

from __future__ import annotations

import pytest

from sidecar.errors import NoRoute
from sidecar.exchange import Exchange, Headers, Response
from sidecar.routing import ExplicitRoute, Route, RouteTable


async def _handler(ex: Exchange) -> Response:
    return Response(200)


def _route(name: str, upstream: str | None = None) -> Route:
    return Route(name, upstream or name, _handler)


def _table(*explicit: ExplicitRoute) -> RouteTable:
    return RouteTable({"up": _route("up"), "other": _route("other")}, explicit)


def _resolve(
    table: RouteTable,
    path: str,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    authority_only: bool = False,
) -> tuple[str, str]:
    route, forwarded = table.resolve(
        path, host, Headers((headers or {}).items()), authority_only=authority_only
    )
    return route.name, forwarded


@pytest.mark.parametrize(
    ("path", "route", "forwarded"),
    [
        ("/up/a/b", "up", "/a/b"),
        ("/up/", "up", "/"),
        ("/up", "up", "/"),
        ("/other/x/", "other", "/x/"),
    ],
)
def test_first_segment_names_the_upstream_and_is_stripped(
    path: str, route: str, forwarded: str
) -> None:
    """`/<upstream>/<rest>` goes to `<upstream>` with `<rest>`."""
    assert _resolve(_table(), path) == (route, forwarded)


@pytest.mark.parametrize("path", ["/nope/x", "/upx/a", "/UP/a", "/up.evil/a"])
def test_unknown_first_segment_is_no_route_naming_the_path(path: str) -> None:
    """A path that names no configured upstream is 404 `no_route` with the path in the message."""
    with pytest.raises(NoRoute) as e:
        _resolve(_table(), path)
    assert path in e.value.detail


def test_root_path_names_no_upstream() -> None:
    """`/` alone says which upstreams exist nowhere: 404 with a clear message."""
    with pytest.raises(NoRoute, match="no upstream named in the path"):
        _resolve(_table(), "/")


@pytest.mark.parametrize("host", ["up", "UP", "up:8080", "Up:1"])
def test_host_naming_an_upstream_routes_there_with_the_path_unchanged(host: str) -> None:
    """`Host: <upstream>` (any case, port ignored) routes to it and keeps the whole path."""
    assert _resolve(_table(), "/other/x", host) == ("up", "/other/x")


@pytest.mark.parametrize(
    "host", ["evil.example", "127.0.0.1:15001", "[::1]:15001", "up.evil.example", "evil:up"]
)
def test_unknown_host_falls_back_to_path_routing(host: str) -> None:
    """A `Host` that names no upstream never reaches anything: the path decides, as usual."""
    assert _resolve(_table(), "/up/x", host) == ("up", "/x")
    with pytest.raises(NoRoute):
        _resolve(_table(), "/nope/x", host)


def test_absolute_form_routes_by_authority_only() -> None:
    """`GET http://evil.example/up/` is no route: an absolute URI never falls back to the path."""
    with pytest.raises(NoRoute, match="evil.example"):
        _resolve(_table(), "/up/x", "evil.example", authority_only=True)
    assert _resolve(_table(), "/x", "up", authority_only=True) == ("up", "/x")
    assert _resolve(_table(), "/x", "other:80", authority_only=True) == ("other", "/x")


def _explicit(
    name: str,
    upstream: str,
    prefix: str | None = None,
    host: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    rewrite: str | None = None,
) -> ExplicitRoute:
    return ExplicitRoute(_route(name, upstream), prefix, host, headers, rewrite)


def test_explicit_prefix_matches_on_segment_boundaries() -> None:
    """`path_prefix: /pay` matches `/pay` and `/pay/x`, never `/payx`."""
    table = _table(_explicit("pay", "other", prefix="/pay"))
    assert _resolve(table, "/pay") == ("pay", "/pay")
    assert _resolve(table, "/pay/x") == ("pay", "/pay/x")
    with pytest.raises(NoRoute):
        _resolve(table, "/payx")


def test_explicit_prefix_rewrite_replaces_the_prefix() -> None:
    """`prefix_rewrite` swaps the matched prefix and keeps the rest."""
    table = _table(
        _explicit("v1", "up", prefix="/api/v1", rewrite="/"),
        _explicit("v2", "up", prefix="/api/v2", rewrite="/v2/"),
    )
    assert _resolve(table, "/api/v1/users") == ("v1", "/users")
    assert _resolve(table, "/api/v1") == ("v1", "/")
    assert _resolve(table, "/api/v2/users") == ("v2", "/v2/users")


def test_explicit_routes_first_match_wins_and_beat_the_defaults() -> None:
    """Explicit routes are tried in config order before `Host` and `/<upstream>/` routing."""
    table = _table(
        _explicit("by-header", "other", prefix="/up", headers=(("x-canary", "1"),)),
        _explicit("catch-up", "up", prefix="/up"),
    )
    assert _resolve(table, "/up/a", headers={"x-canary": "1"}) == ("by-header", "/up/a")
    assert _resolve(table, "/up/a", headers={"x-canary": "2"}) == ("catch-up", "/up/a")


def test_explicit_host_route_matches_host_without_port_and_is_used_for_absolute_form() -> None:
    """`match.host` compares the bare, lower-cased host; it is what absolute-form may reach."""
    table = _table(
        _explicit("api", "other", host="api.internal"),
        _explicit("any", "up", prefix="/"),
    )
    assert _resolve(table, "/x", "API.internal:443") == ("api", "/x")
    assert _resolve(table, "/x", "api.internal", authority_only=True) == ("api", "/x")
    # a route without a host condition is not an authority: absolute-form cannot use it
    with pytest.raises(NoRoute):
        _resolve(table, "/x", "evil.example", authority_only=True)
    assert _resolve(table, "/x", "evil.example") == ("any", "/x")


def test_host_routing_finds_upstreams_whose_names_have_capitals() -> None:
    """`Host` is case-insensitive, so `Host: payments` reaches an upstream named `Payments`."""
    table = RouteTable({"Payments": _route("Payments")})
    assert _resolve(table, "/x", "payments:443") == ("Payments", "/x")
    assert _resolve(table, "/Payments/x") == ("Payments", "/x")
