"""HTTP/2 message heads (sidecar.http2.header_rules): valid requests, responses and trailers pass,
and each rule of RFC 9113 8.2 and 8.3 names the first thing it refuses."""

from __future__ import annotations

import re

import pytest

from sidecar.http2.header_rules import (
    CONNECTION_SPECIFIC,
    USUAL_NAMES,
    check_request,
    check_response,
    check_trailers,
)

Headers = list[tuple[bytes, bytes]]

GRPC_REQUEST: Headers = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/echo.v1.Echo/Unary"),
    (b":authority", b"127.0.0.1:15002"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
    (b"grpc-timeout", b"250m"),
    (b"x-tenant", b"blue green"),
    (b"x-empty", b""),
    (b"x-token!#$%&'*+-.^_`|~09", b"v"),
]


def with_field(headers: Headers, field: tuple[bytes, bytes]) -> Headers:
    return [*headers, field]


def test_a_grpc_request_is_valid() -> None:
    """A usual gRPC request head, with every token character in a name, passes."""
    assert check_request(GRPC_REQUEST) is None


def test_connect_needs_only_method_and_authority() -> None:
    """A CONNECT request carries :method and :authority, and nothing of a path."""
    assert check_request([(b":method", b"CONNECT"), (b":authority", b"example.com:443")]) is None
    assert (
        check_request([(b":method", b"CONNECT")])
        == "CONNECT request without exactly one :authority"
    )
    assert check_request([(b":method", b"CONNECT"), (b":authority", b"a:1"), (b":path", b"/")]) == (
        "CONNECT request with :scheme or :path"
    )


def test_authority_is_optional_in_a_request() -> None:
    """A request may leave :authority out (a host-less request)."""
    assert check_request([(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/")]) is None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([(b":scheme", b"http"), (b":path", b"/")], "exactly one :method"),
        (
            [(b":method", b"GET"), (b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/")],
            "exactly one :method",
        ),
        ([(b":method", b"GET"), (b":path", b"/")], "exactly one :scheme"),
        (
            [(b":method", b"GET"), (b":scheme", b"http"), (b":scheme", b"http"), (b":path", b"/")],
            "one :scheme",
        ),
        ([(b":method", b"GET"), (b":scheme", b"http")], "exactly one :path"),
        (
            [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":path", b"/")],
            "exactly one :path",
        ),
        ([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"")], "empty :path"),
        ([*GRPC_REQUEST[:4], (b":authority", b"other")], "more than one :authority"),
        ([*GRPC_REQUEST[:4], (b":status", b"200")], "unknown pseudo-header"),
        ([*GRPC_REQUEST[:4], (b":protocol", b"websocket")], "unknown pseudo-header"),
        (
            [*GRPC_REQUEST[:3], (b"x-a", b"1"), (b":authority", b"a")],
            "pseudo-header after a regular field",
        ),
        ([*GRPC_REQUEST[:3], (b":authority", b"a\r\nx: y")], "NUL, CR or LF"),
    ],
)
def test_request_pseudo_header_rules(headers: Headers, reason: str) -> None:
    """A request missing, repeating, misplacing or inventing a pseudo-header is refused."""
    found = check_request(headers)
    assert found is not None
    assert reason in found


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ((b"", b"v"), "empty field name"),
        ((b"X-Tenant", b"blue"), "lowercase token"),
        ((b"x tenant", b"blue"), "lowercase token"),
        ((b"x:tenant", b"blue"), "lowercase token"),
        ((b"x-\xe9", b"blue"), "lowercase token"),
        ((b"x-a", b"a\x00b"), "NUL, CR or LF"),
        ((b"x-a", b"a\rb"), "NUL, CR or LF"),
        ((b"x-a", b"a\nb"), "NUL, CR or LF"),
        ((b"x-a", b" a"), "whitespace"),
        ((b"x-a", b"a\t"), "whitespace"),
        ((b"x-a", b" "), "whitespace"),
        ((b"connection", b"close"), "connection-specific"),
        ((b"keep-alive", b"timeout=5"), "connection-specific"),
        ((b"proxy-connection", b"keep-alive"), "connection-specific"),
        ((b"transfer-encoding", b"chunked"), "connection-specific"),
        ((b"upgrade", b"h2c"), "connection-specific"),
        ((b"te", b"gzip"), "te field other than trailers"),
    ],
)
def test_field_rules_apply_to_every_kind_of_block(field: tuple[bytes, bytes], reason: str) -> None:
    """A bad name or value, an HTTP/1.1-only field, or te other than trailers is always refused."""
    for check, valid in [
        (check_request, GRPC_REQUEST),
        (check_response, [(b":status", b"200")]),
        (check_trailers, [(b"grpc-status", b"0")]),
    ]:
        assert check(valid) is None
        found = check(with_field(valid, field))
        assert found is not None
        assert reason in found


def test_a_response_has_one_three_digit_status_first() -> None:
    """A response head is exactly one three-digit :status, then regular fields."""
    assert check_response([(b":status", b"200"), (b"content-type", b"application/grpc")]) is None
    assert (
        check_response([(b"content-type", b"application/grpc")])
        == "response without exactly one :status"
    )
    assert (
        check_response([(b":status", b"200"), (b":status", b"200")])
        == "response without exactly one :status"
    )
    assert check_response([(b":status", b"20")]) == ":status is not three digits"
    assert check_response([(b":status", b"2x0")]) == ":status is not three digits"
    assert (
        check_response([(b":status", b"200"), (b":path", b"/")])
        == "pseudo-header other than :status in a response"
    )
    assert (
        check_response([(b"x-a", b"1"), (b":status", b"200")])
        == "pseudo-header after a regular field"
    )


def test_trailers_carry_no_pseudo_header() -> None:
    """Trailers are regular fields only: any pseudo-header, even :status, is refused."""
    assert check_trailers([(b"grpc-status", b"0"), (b"grpc-message", b"")]) is None
    assert check_trailers([]) is None
    assert (
        check_trailers([(b"grpc-status", b"0"), (b":status", b"200")])
        == "pseudo-header in trailers"
    )


def test_usual_names_skipped_by_the_byte_check_are_valid_tokens() -> None:
    """The names checked by set membership alone would pass the full token rule, te aside."""
    assert USUAL_NAMES
    for name in USUAL_NAMES:
        assert re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9a-z]+", name)
        assert name not in CONNECTION_SPECIFIC
        assert name != b"te"
