"""The HTTP/2 front's header handling (sidecar.grpc.h2_messages): what the chain sees of a
call's HEADERS, ``grpc-timeout``, and the trailers written back to the app."""

from __future__ import annotations

import pytest

from sidecar.exchange import Headers
from sidecar.grpc.h2_messages import parse_timeout, percent_encode, read_request, trailers_block
from sidecar.grpc.wire import encode_bin


def test_request_headers_become_the_exchanges_metadata_without_transport_fields() -> None:
    """Path and authority are read; reserved names are dropped; ``-bin`` values padded base64."""
    head = read_request(
        [
            (b":method", b"POST"),
            (b":scheme", b"http"),
            (b":path", b"/echo.v1.Echo/Unary"),
            (b":authority", b"payments:443"),
            (b"content-type", b"application/grpc+proto"),
            (b"te", b"trailers"),
            (b"grpc-timeout", b"250m"),
            (b"user-agent", b"grpc-python"),
            (b"x-tenant", b"blue"),
            (b"trace-bin", b"AAEC"),
            (b"odd-bin", b"AAE"),  # unpadded, as gRPC peers may send it
        ]
    )
    assert head.path == "/echo.v1.Echo/Unary"
    assert head.authority == "payments:443"
    assert head.content_type == b"application/grpc+proto"
    assert head.timeout == 0.25
    assert head.metadata == [("x-tenant", "blue"), ("trace-bin", "AAEC"), ("odd-bin", "AAE=")]


def test_grpc_timeout_units_and_malformed_values() -> None:
    """Every unit of the spec parses; a malformed value is no deadline rather than an error."""
    assert parse_timeout(b"1H") == 3600.0
    assert parse_timeout(b"2M") == 120.0
    assert parse_timeout(b"3S") == 3.0
    assert parse_timeout(b"40u") == pytest.approx(40e-6)
    assert parse_timeout(b"7n") == pytest.approx(7e-9)
    for bad in (b"", b"S", b"10", b"10x", b"-1S", b"1234567890S"):
        assert parse_timeout(bad) is None


def test_grpc_message_is_percent_encoded_as_the_spec_says() -> None:
    """Printable ASCII passes as is; ``%`` and other bytes are percent-encoded (UTF-8)."""
    assert percent_encode("no route: x") == b"no route: x"
    assert percent_encode("50% off\n") == b"50%25 off%0A"
    assert percent_encode("caf\u00e9") == b"caf%C3%A9"


def test_trailers_carry_status_details_and_metadata_trailers_only_adds_the_head() -> None:
    """A trailers block has the status, encoded details and trailing metadata (binary details
    included); a trailers-only answer also carries ``:status`` and the content type."""
    trailers = Headers.wrap(
        [
            ("grpc-status", "5"),
            ("grpc-message", "not 100%"),
            ("grpc-status-details-bin", encode_bin(b"\x01\x02")),
            ("x-sidecar-error", "no_route"),
        ]
    )
    block = trailers_block(trailers, only=False)
    assert block == [
        (b"grpc-status", b"5"),
        (b"grpc-message", b"not 100%25"),
        (b"grpc-status-details-bin", b"AQI="),
        (b"x-sidecar-error", b"no_route"),
    ]
    only = trailers_block(trailers, only=True)
    assert only[:2] == [(b":status", b"200"), (b"content-type", b"application/grpc")]
    assert only[2:] == block
