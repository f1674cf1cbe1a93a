"""An upstream can never be named like the sidecar's own address, which the app sends as Host."""

from __future__ import annotations

import pytest

from sidecar.config import parse_config
from sidecar.errors import ConfigError, NoRoute
from sidecar.exchange import Headers, Response
from sidecar.hosts import is_loopback_host, split_host
from sidecar.routing import Route, RouteTable


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "s.yaml", {})
    return [str(p) for p in e.value.problems]


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "127.0.0.1",
        "127.1.2.3",
        "0.0.0.0",  # noqa: S104 - a name under test, nothing binds it
        "ip6-localhost",
        "ip6-loopback",
        "localhost.localdomain",
        "app.localhost",
    ],
)
def test_an_upstream_named_like_the_sidecars_own_address_is_refused(name: str) -> None:
    """Host routing runs first: such an upstream would capture every call the app makes."""
    text = f"upstreams:\n  '{name}': {{url: 'http://127.0.0.1:8080'}}\n"
    assert problems(text) == [
        f's.yaml: upstreams.{name}: "{name}" is how the app reaches the sidecar itself: Host '
        "routing would send every call made through that name to this upstream; name it after "
        "its service (its url may still point there)"
    ]


def test_the_host_of_a_configured_listener_address_is_refused_too() -> None:
    """The inbound listener's pod address is the sidecar's own as well."""
    text = (
        "inbound: {address: '10.1.2.3:15006', app: '127.0.0.1:8080',\n"
        "          tls: {cert: /c, key: /k, ca: /ca}}\n"
        "upstreams:\n  '10.1.2.3': {url: 'http://10.1.2.3:8080'}\n"
    )
    assert any(p.startswith("s.yaml: upstreams.10.1.2.3: ") for p in problems(text))


def test_an_upstream_whose_url_points_at_localhost_is_fine() -> None:
    """Only the name matters: a local service is still reachable, under its own name."""
    config = parse_config("upstreams:\n  app: {url: 'http://localhost:8080'}\n", "s.yaml", {})
    assert list(config.upstreams) == ["app"]


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ("127.0.0.1:15001", "127.0.0.1", 15001),
        ("LocalHost", "localhost", None),
        ("[::1]:15000", "::1", 15000),
        ("[::1]", "::1", None),
        ("::1", "::1", None),
        ("evil.example:15000", "evil.example", 15000),
        ("localhost.:80", "localhost", 80),
    ],
)
def test_host_values_split_into_host_and_port(value: str, host: str, port: int | None) -> None:
    """Every way an app or a browser writes Host is understood alike."""
    assert split_host(value) == (host, port)


def test_loopback_names_and_literals() -> None:
    """localhost and its kin, 127/8, ::1 and the unspecified addresses are loopback; no DNS."""
    for host in ("localhost", "a.localhost", "127.9.9.9", "::1", "0.0.0.0", "::", "ip6-localhost"):  # noqa: S104
        assert is_loopback_host(host), host
    for host in ("evil.example", "10.0.0.1", "localhost.evil.example", "payments"):
        assert not is_loopback_host(host), host


async def test_a_route_table_never_routes_a_loopback_host_to_an_upstream() -> None:
    """Even a table built without validation path-routes `Host: localhost` calls."""

    async def handler(exchange: object) -> Response:
        return Response(200, Headers(), b"")

    table = RouteTable(
        {"localhost": Route("localhost", "localhost", handler), "pay": Route("pay", "pay", handler)}
    )
    route, path = table.resolve("/pay/x", "localhost:15001", Headers())
    assert (route.upstream, path) == ("pay", "/x")
    with pytest.raises(NoRoute):
        table.resolve("/x", "localhost", Headers(), authority_only=True)
