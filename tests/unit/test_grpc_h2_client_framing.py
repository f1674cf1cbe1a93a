"""The gRPC client's framing (sidecar.grpc.h2_client_framing): message prefixes both ways, the
deframer's limits, ``grpc-timeout`` rounding, and response heads and trailers as the chain
carries them."""

from __future__ import annotations

import pytest

from sidecar.grpc.h2_client_framing import (
    FramingError,
    MessageReader,
    code_of_http_status,
    frame_message,
    grpc_timeout,
    percent_decode,
    response_metadata_of,
    retime,
    trailers_of,
)


def test_a_message_gets_the_uncompressed_flag_and_its_length() -> None:
    """A request message is prefixed with flag 0 and its big-endian 4-byte length."""
    assert frame_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert frame_message(b"") == b"\x00\x00\x00\x00\x00"


def test_messages_are_reassembled_whatever_the_frame_boundaries() -> None:
    """Messages come out whole and in order whatever the DATA frame boundaries."""
    wire = frame_message(b"one") + frame_message(b"") + frame_message(b"three" * 1000)
    for cut in (1, 2, 5, 7, 4096):
        reader = MessageReader(limit=1 << 20)
        for i in range(0, len(wire), cut):
            reader.feed(wire[i : i + cut])
        assert list(reader.messages) == [b"one", b"", b"three" * 1000]
        assert not reader.partial


def test_a_whole_message_in_one_frame_takes_the_fast_path_unchanged() -> None:
    """A frame holding exactly one message yields it (the common unary answer)."""
    reader = MessageReader(limit=100)
    reader.feed(frame_message(b"x" * 100))
    assert list(reader.messages) == [b"x" * 100]


def test_a_message_over_the_limit_is_refused_from_its_prefix() -> None:
    """A message over the limit is refused from its prefix, before its bytes are buffered."""
    whole = frame_message(b"x" * 101)
    with pytest.raises(FramingError) as err:
        MessageReader(limit=100).feed(whole)
    assert (err.value.code, err.value.reason) == (8, "body_too_large")
    reader = MessageReader(limit=100)
    with pytest.raises(FramingError):
        reader.feed(whole[:6])


def test_a_compressed_message_is_refused() -> None:
    """A message with the compressed flag ends the call INTERNAL (identity only is accepted)."""
    with pytest.raises(FramingError) as err:
        MessageReader(limit=100).feed(b"\x01\x00\x00\x00\x01a")
    assert (err.value.code, err.value.reason) == (13, "upstream_protocol")
    assert "compressed" in err.value.details


@pytest.mark.parametrize(
    ("remaining", "sent"),
    [
        (5.0, b"4990m"),
        (0.5, b"499m"),
        (0.0109, b"9m"),
        (0.0021, b"1m"),
        (12.3456, b"12300m"),
        (3600.0, b"3590000m"),
        (200_000.0, b"199900S"),
    ],
)
def test_grpc_timeout_is_rounded_down_onto_the_clients_grid(remaining: float, sent: bytes) -> None:
    """grpc-timeout is what is left less a millisecond, rounded down onto the grid gRPC clients
    round theirs up onto (the app's own timeout may have reached the sidecar a step late)."""
    assert grpc_timeout(remaining) == sent


def test_too_little_time_left_sends_no_call() -> None:
    """Under ~2 ms left, there is no timeout to send: the call is not made."""
    assert grpc_timeout(0.0015) is None
    assert grpc_timeout(-1.0) is None


def test_a_call_that_waited_is_sent_with_what_is_left() -> None:
    """A call that waited for a stream is sent with the time left then, not when it began."""
    headers = [(b":path", b"/s/m"), (b"grpc-timeout", b"4990m"), (b"x", b"1")]
    assert retime(headers, 3.0)
    assert headers == [(b":path", b"/s/m"), (b"grpc-timeout", b"2990m"), (b"x", b"1")]
    assert not retime(headers, 0.001)
    assert retime([(b":path", b"/s/m")], 0.001)  # no deadline: nothing to change


def test_grpc_message_is_percent_decoded_as_utf8() -> None:
    """``grpc-message`` comes back as the text the upstream meant, bad UTF-8 replaced."""
    assert percent_decode(b"plain text") == "plain text"
    assert percent_decode(b"100%25 %E2%9C%93") == "100% ✓"
    assert percent_decode(b"bad %FF") == "bad \ufffd"


def test_trailers_carry_status_details_and_metadata_as_the_chain_does() -> None:
    """Trailers become status, decoded message and trailing metadata as the chain carries them."""
    got = trailers_of(
        [
            (b":status", b"200"),
            (b"content-type", b"application/grpc"),
            (b"grpc-status", b"5"),
            (b"grpc-message", b"not%20found"),
            (b"grpc-status-details-bin", b"AAE"),
            (b"x-id-bin", b"AQID"),
            (b"x-plain", b"v"),
        ]
    )
    assert list(got.items()) == [
        ("grpc-status", "5"),
        ("grpc-message", "not found"),
        ("grpc-status-details-bin", "AAE="),
        ("x-id-bin", "AQID"),
        ("x-plain", "v"),
    ]


def test_a_missing_or_malformed_status_is_unknown() -> None:
    """Trailers without a valid ``grpc-status`` say UNKNOWN, as gRPC clients read them."""
    assert trailers_of([]).get("grpc-status") == "2"
    assert trailers_of([(b"grpc-status", b"99")]).get("grpc-status") == "2"
    assert trailers_of([(b"grpc-status", b"9" * 5000)]).get("grpc-status") == "2"


def test_initial_metadata_drops_pseudo_and_transport_fields() -> None:
    """Initial metadata drops :status and the transport fields gRPC sets itself."""
    got = response_metadata_of(
        [
            (b":status", b"200"),
            (b"content-type", b"application/grpc"),
            (b"grpc-encoding", b"identity"),
            (b"x-a", b"1"),
            (b"x-b-bin", b"/w"),
        ]
    )
    assert got == [("x-a", "1"), ("x-b-bin", "/w==")]


def test_an_http_error_maps_to_the_grpc_code_the_spec_names() -> None:
    """A non-gRPC HTTP answer becomes the gRPC status the spec maps it to."""
    assert [code_of_http_status(s) for s in (400, 401, 403, 404, 429, 502, 503, 504, 500)] == [
        13,
        16,
        7,
        12,
        14,
        14,
        14,
        14,
        2,
    ]
