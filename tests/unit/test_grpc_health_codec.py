"""The health messages the sidecar reads and writes without protobuf are the ones protobuf's
generated classes read and write: a gRPC client's health check and its answer mean the same."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2

from sidecar.grpc.health_codec import (
    decode_check_request,
    encode_check_response,
    encode_list_response,
)

Status = health_pb2.HealthCheckResponse


@pytest.mark.parametrize("service", ["", "payments", "inventory.v1.Inventory", "ünï" * 50])
def test_a_check_request_is_read_as_protobuf_wrote_it(service: str) -> None:
    """The service name a client asks about arrives as it sent it (long and non-ASCII too)."""
    data = health_pb2.HealthCheckRequest(service=service).SerializeToString()
    assert decode_check_request(data) == service


def test_unknown_fields_of_a_request_are_skipped() -> None:
    """A newer client's extra fields (of any wire type) do not hide the service name."""
    name = health_pb2.HealthCheckRequest(service="payments").SerializeToString()
    extra = b"\x10\x96\x01" + b"\x1a\x03abc" + b"\x25\x01\x02\x03\x04" + b"\x29" + bytes(8)
    assert decode_check_request(extra + name) == "payments"


@pytest.mark.parametrize("data", [b"\x0a\x05abc", b"\x0a", b"\xff", b"\x0b", b"\x00\x01"])
def test_a_malformed_request_is_refused(data: bytes) -> None:
    """Bytes that are not a request message raise ValueError (the call is INVALID_ARGUMENT)."""
    with pytest.raises(ValueError):
        decode_check_request(data)


@pytest.mark.parametrize(
    "status", [Status.UNKNOWN, Status.SERVING, Status.NOT_SERVING, Status.SERVICE_UNKNOWN]
)
def test_a_check_response_is_what_protobuf_writes(status: int) -> None:
    """Each status is written byte for byte as protobuf writes it, UNKNOWN (0) as no field."""
    assert encode_check_response(status) == Status(status=status).SerializeToString()


def test_a_list_response_reads_back_as_the_statuses_given() -> None:
    """``List``'s map of services to statuses parses with protobuf's class, entry for entry."""
    statuses = {"": Status.SERVING, "payments": Status.NOT_SERVING, "idle": Status.UNKNOWN}
    parsed = health_pb2.HealthListResponse.FromString(encode_list_response(statuses))
    assert {k: v.status for k, v in parsed.statuses.items()} == statuses
