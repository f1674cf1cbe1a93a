"""The gRPC adapter's fast path, without sockets: the unary methods a config declares, and a
whole request taken off the HTTP/2 front's stream (the calls themselves:
tests/integration/test_grpc_h2_client.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from sidecar.grpc.channels import GrpcUpstreamOptions, unary_matcher
from sidecar.grpc.h2_stream import H2Stream

# --- declared unary methods ------------------------------------------------------------------


def test_unary_methods_name_methods_or_whole_services() -> None:
    """``options.unary_methods`` takes Service/Method and Service/* and matches method paths."""
    options = GrpcUpstreamOptions.model_validate(
        {"unary_methods": ["echo.v1.Echo/Unary", "/inventory.v1.Admin/*"]}
    )
    is_unary = unary_matcher(options.unary_methods)
    assert is_unary("/echo.v1.Echo/Unary")
    assert is_unary("/inventory.v1.Admin/Reload")
    assert not is_unary("/echo.v1.Echo/Bidi")
    assert not is_unary("/inventory.v1.Inventory/GetStock")
    assert unary_matcher(["a.B/C"])("/a.B/C") and not unary_matcher(["a.B/C"])("/a.B/D")


@pytest.mark.parametrize(
    "bad", ["echo.v1.Echo", "echo.v1.Echo/", "echo.v1.Echo/A/B", "echo v1/A", "é.Echo/A", "/*"]
)
def test_a_malformed_unary_method_is_refused(bad: str) -> None:
    """A typo in ``unary_methods`` fails config validation instead of never matching."""
    with pytest.raises(ValidationError, match="package.Service/Method"):
        GrpcUpstreamOptions.model_validate({"unary_methods": [bad]})


# --- a whole request off the HTTP/2 front's stream -----------------------------------------------


def h2_stream() -> tuple[H2Stream, list[int]]:
    acked: list[int] = []
    h2c = SimpleNamespace(acknowledge_received_data=lambda n, sid: acked.append(n))
    conn: Any = SimpleNamespace(
        h2=h2c,
        clock=0.0,
        listener=SimpleNamespace(max_receive=1 << 20, refuse=lambda s, e: None),
        mark=lambda: None,
        loop=None,
    )
    return H2Stream(conn, 1), acked


def framed(message: bytes) -> bytes:
    return b"\0" + len(message).to_bytes(4, "big") + message


@pytest.mark.parametrize("message", [b"hello", b""])
def test_a_half_closed_single_message_request_is_taken_whole(message: bytes) -> None:
    """One whole message and the app's half-close (a unary call's request, empty ones too) are
    handed over as bytes, and the bytes are acknowledged to the app."""
    stream, acked = h2_stream()
    stream.on_data(framed(message), len(framed(message)))
    assert stream.whole_request() is None  # not half-closed yet: could be a stream
    stream.on_end()
    assert stream.whole_request() == message
    assert sum(acked) == len(framed(message)) and not stream.buf


async def test_two_messages_or_a_partial_one_stay_a_stream() -> None:
    """A request of two messages (or one still arriving) is read as a stream, nothing lost."""
    stream, _ = h2_stream()
    data = framed(b"a") + framed(b"b")
    stream.on_data(data, len(data))
    stream.on_end()
    assert stream.whole_request() is None
    assert [m async for m in stream] == [b"a", b"b"]
    partial, _ = h2_stream()
    partial.on_data(framed(b"abc")[:6], 6)
    assert partial.whole_request() is None
