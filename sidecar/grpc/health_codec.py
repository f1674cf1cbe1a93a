"""The messages of ``grpc.health.v1.Health`` in protobuf's wire format, read and written here.

Four messages, each one or no field (``HealthCheckRequest.service``,
``HealthCheckResponse.status``, an empty ``HealthListRequest``, ``HealthListResponse.statuses``,
a map), written out so that a health check never needs the protobuf runtime: probes call it
all the time, and on the HTTP/2 front nothing else of the sidecar's loads protobuf until the
admin API or reflection is called. The field numbers are those of grpc's ``health.proto``;
unknown fields are skipped, as protobuf readers do. Not here: what the statuses are
(:mod:`.health_service`).
"""

from __future__ import annotations

__all__ = [
    "decode_check_request",
    "encode_check_response",
    "encode_list_response",
    "read_fields",
]

from collections.abc import Iterator, Mapping

#: protobuf wire types
VARINT, I64, LEN, I32 = 0, 1, 2, 5
#: what a request message may be: health requests are a service name, nothing more
MAX_REQUEST = 64 * 1024


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``data[at:]`` and where the next field starts."""
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a truncated or overlong varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def read_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of each field of a message; ``ValueError`` when the
    bytes are not a protobuf message."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, at = _varint(data, at)
        elif wire == LEN:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ValueError("a length past the message's end")
            value, at = data[at : at + size], at + size
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            if at + size > len(data):
                raise ValueError("a fixed-size field past the message's end")
            value, at = data[at : at + size], at + size
        else:
            raise ValueError(f"wire type {wire} is not one a health message has")
        if number == 0:
            raise ValueError("field number 0")
        yield number, wire, value


def decode_check_request(data: bytes) -> str:
    """``HealthCheckRequest.service`` (field 1; ``""``, the overall status, when absent)."""
    if len(data) > MAX_REQUEST:
        raise ValueError(f"a health request of {len(data)} bytes")
    service = ""
    for number, wire, value in read_fields(data):
        if number == 1 and wire == LEN and isinstance(value, bytes):
            service = value.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return service


def _write_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(number: int, value: bytes) -> bytes:
    return _write_varint(number << 3 | LEN) + _write_varint(len(value)) + value


def encode_check_response(status: int) -> bytes:
    """``HealthCheckResponse{status}`` (proto3: UNKNOWN, 0, is written as no field)."""
    return b"\x08" + _write_varint(status) if status else b""


def encode_list_response(statuses: Mapping[str, int]) -> bytes:
    """``HealthListResponse{statuses}``: a map entry (key 1, value 2) per service."""
    return b"".join(
        _len_field(
            1, _len_field(1, name.encode("utf-8")) + _len_field(2, encode_check_response(status))
        )
        for name, status in statuses.items()
    )
