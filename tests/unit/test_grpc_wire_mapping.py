"""How gRPC metadata, statuses, routes and channels map onto the chain's terms (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sidecar.config import parse_config
from sidecar.errors import NoRoute
from sidecar.exchange import Exchange, Headers, Response
from sidecar.filters import metrics as metrics_filter
from sidecar.grpc.channels import ChannelConfigError, GrpcUpstreamOptions
from sidecar.grpc.h2_channel_target import channel_target
from sidecar.grpc.metadata import (
    MetadataInvalid,
    headers_from_metadata,
    request_metadata,
    response_metadata,
    split_status,
    status_trailers,
)
from sidecar.grpc.routes import GrpcRoutes, service_of
from sidecar.routing import ExplicitRoute, Route
from sidecar.telemetry.metrics import Metrics
from sidecar.testing import make_route_context

# --- metadata ----------------------------------------------------------------------------------


def test_app_metadata_becomes_headers_without_transport_fields() -> None:
    """Reserved and pseudo names are dropped; ``-bin`` values travel as base64 text."""
    h = headers_from_metadata(
        [
            ("user-agent", "grpc-python"),
            ("te", "trailers"),
            ("x-a", "1"),
            ("x-id-bin", b"\x00\xff"),
            ("x-a", "2"),
        ]
    )
    assert h.items() == [("x-a", "1"), ("x-id-bin", "AP8="), ("x-a", "2")]


def test_headers_become_request_metadata_with_binary_values_decoded() -> None:
    """What the chain holds is sent upstream as grpcio takes it; unpadded base64 is accepted."""
    h = Headers([("x-a", "1"), ("x-id-bin", "AP8"), ("grpc-timeout", "1S"), ("te", "trailers")])
    assert request_metadata(h) == (("x-a", "1"), ("x-id-bin", b"\x00\xff"))


@pytest.mark.parametrize(
    "pair",
    [("X-Upper", "v"), ("x-a", "caf\u00e9"), ("x-a", "line\nbreak"), ("x-id-bin", "*not b64*")],
)
def test_metadata_grpc_cannot_carry_is_refused_toward_the_upstream(pair: tuple[str, str]) -> None:
    """A filter's pair gRPC cannot send is a clear error naming it, not a broken call."""
    with pytest.raises(MetadataInvalid, match=repr(pair[0])):
        request_metadata(Headers([pair]))


def test_metadata_grpc_cannot_carry_is_dropped_toward_the_app() -> None:
    """Toward the app, the answer is decided already: odd pairs are dropped, the rest kept."""
    h = Headers([("x-ok", "1"), ("x-bad", "caf\u00e9"), ("grpc-status", "0")])
    assert response_metadata(h) == (("x-ok", "1"),)


def test_status_trailers_round_trip() -> None:
    """Code, details, binary details and trailing metadata survive the trip through trailers."""
    trailers = status_trailers(
        5, "gone: 100%", [("grpc-status-details-bin", b"\x08\x05"), ("x-t", "v")]
    )
    assert trailers.get("grpc-status") == "5"
    assert trailers.get("grpc-status-details-bin") == "CAU="
    assert split_status(trailers) == (
        5,
        "gone: 100%",
        (("grpc-status-details-bin", b"\x08\x05"), ("x-t", "v")),
    )


@pytest.mark.parametrize("value", ["", "x", "99", "-1", "1000"])
def test_a_missing_or_odd_status_is_unknown(value: str) -> None:
    """As gRPC clients do, a status that is not a known code counts as UNKNOWN (2)."""
    assert split_status(Headers([("grpc-status", value)]))[0] == 2
    assert split_status(Headers())[0] == 2


# --- routes ------------------------------------------------------------------------------------


def _route(name: str) -> Route:
    async def handler(ex: Exchange) -> Response:
        raise AssertionError

    return Route(name, name, handler)


def test_service_names_route_to_their_upstream() -> None:
    """``/pkg.Service/Method`` goes to the upstream listing ``pkg.Service``."""
    pay, inv = _route("payments"), _route("inventory")
    table = GrpcRoutes({"payments": pay, "inventory": inv}, {"payments.v1.Payments": "payments"})
    assert table.resolve("/payments.v1.Payments/Charge", None, Headers()) == (
        pay,
        "/payments.v1.Payments/Charge",
    )
    with pytest.raises(NoRoute, match="inventory.v1.Stock"):
        table.resolve("/inventory.v1.Stock/Get", None, Headers())


def test_an_authority_naming_an_upstream_wins_over_the_service() -> None:
    """An app that targets an upstream by name (authority, port ignored) reaches it."""
    pay, inv = _route("payments"), _route("inventory")
    table = GrpcRoutes({"payments": pay, "inventory": inv}, {"payments.v1.Payments": "payments"})
    assert table.resolve("/payments.v1.Payments/Charge", "Inventory:50051", Headers())[0] is inv
    assert table.resolve("/payments.v1.Payments/Charge", "127.0.0.1:15002", Headers())[0] is pay


def test_explicit_routes_match_method_prefix_metadata_and_rename() -> None:
    """Explicit routes come first: a path prefix on the method, metadata values, a rewrite."""
    pay, canary = _route("payments"), _route("canary")
    table = GrpcRoutes(
        {"payments": pay, "canary": canary},
        {"payments.v1.Payments": "payments"},
        [
            ExplicitRoute(
                canary, "/payments.v1.Payments", None, (("x-canary", "1"),), "/payments.v2.Payments"
            )
        ],
    )
    assert table.resolve("/payments.v1.Payments/Charge", None, Headers([("x-canary", "1")])) == (
        canary,
        "/payments.v2.Payments/Charge",
    )
    assert table.resolve("/payments.v1.Payments/Charge", None, Headers())[0] is pay


@pytest.mark.parametrize("path", ["/", "/x", "/a.B/", "//M", "/a.B/M/extra", "a.B/M"])
def test_a_path_that_is_no_grpc_method_is_no_route(path: str) -> None:
    """Only ``/<service>/<method>`` names a gRPC method."""
    assert service_of(path) is None
    with pytest.raises(NoRoute):
        GrpcRoutes({}, {}).resolve(path, None, Headers())


# --- channels ----------------------------------------------------------------------------------


def _upstream(**fields: Any) -> Any:
    data = {"upstreams": {"u": {"adapter": "grpc", "url": "grpc://inv:50051", **fields}}}
    return parse_config(yaml.safe_dump(data), "<t>").upstreams["u"]


def test_a_plaintext_channel_and_its_options() -> None:
    """``grpc://`` is plaintext; ``host`` is the ``:authority``; sizes and keepalive applied."""
    options = GrpcUpstreamOptions.model_validate(
        {"keepalive_time": "30s", "max_receive_message_size": "16MiB"}
    )
    target = channel_target(_upstream(connect_timeout="2s", host="inventory"), options)
    assert (target.target, target.tls, target.authority) == ("inv:50051", None, "inventory")
    assert target.keepalive == (30.0, 20.0, False)
    assert target.max_receive_message_size == 16 * 1024 * 1024
    assert target.connect_timeout == 2.0


def test_a_tls_channel_verifies_under_the_urls_host_unless_told_otherwise() -> None:
    """``grpcs://`` is TLS: the server is checked under the URL's host, or ``tls.server_name``;
    ``tls.verify: false`` and ``tls.spiffe_id`` are the channel's to honour, not refused."""
    plain = channel_target(_upstream(url="grpcs://inv:443"), GrpcUpstreamOptions())
    assert plain.tls is not None and plain.server_name == "inv"
    named = channel_target(
        _upstream(url="grpcs://10.0.0.7:443", tls={"server_name": "inventory.internal"}),
        GrpcUpstreamOptions(),
    )
    assert named.server_name == "inventory.internal" and named.authority == "10.0.0.7:443"
    lax = channel_target(
        _upstream(url="grpcs://inv:1", tls={"verify": False}), GrpcUpstreamOptions()
    )
    assert lax.tls is not None and lax.tls.verify is False
    spiffe = {"spiffe_id": "spiffe://c.l/ns/a/sa/b"}
    checked = channel_target(_upstream(url="grpcs://inv:1", tls=spiffe), GrpcUpstreamOptions())
    assert checked.tls is not None and checked.tls.spiffe_id == spiffe["spiffe_id"]


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"url": "http://inv:80"}, "url"),
        ({"url": "grpc://inv"}, "url"),
        ({"url": "grpc://inv:1/base"}, "url"),
        ({"url": "grpc://inv:1", "tls": {"server_name": "x"}}, "tls"),
    ],
)
def test_what_a_grpc_channel_cannot_do_is_refused(fields: dict[str, Any], key: str) -> None:
    """A config no gRPC channel can honour fails with the key that is wrong, never silently."""
    with pytest.raises(ChannelConfigError) as err:
        channel_target(_upstream(**fields), GrpcUpstreamOptions())
    assert err.value.key == key


# --- metrics -----------------------------------------------------------------------------------


async def test_grpc_calls_are_counted_by_status_code_when_they_end() -> None:
    """On the gRPC listener the ``code`` label is the gRPC status, known when the call ends."""
    metrics = Metrics()
    ctx = make_route_context(metrics=metrics, front="grpc")
    f = metrics_filter.factory(ctx)

    async def answer(ex: Exchange) -> Response:
        return Response(200)

    resp = await f(Exchange("POST", "/a.B/M", Headers(), listener="grpc"), answer)
    assert counted(metrics) == {}  # nothing counted before the call ended
    resp.trailers = Headers([("grpc-status", "14")])
    assert resp.on_complete is not None
    for done in resp.on_complete:
        done(True, 0)
    resp2 = await f(Exchange("POST", "/a.B/M", Headers(), listener="grpc"), answer)
    assert resp2.on_complete is not None
    for done in resp2.on_complete:
        done(False, 0)  # cut before its status
    assert counted(metrics) == {"14": 1.0, "1": 1.0}


def counted(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["code"]: sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        if sample.name == "sidecar_requests_total"
    }
