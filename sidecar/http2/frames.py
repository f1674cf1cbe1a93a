"""HTTP/2 frames on the wire (RFC 9113 section 4 and 6): the 9-byte header, the ten frame types'
payloads, their flags, and the error and settings codes, as plain ``int`` constants.

Parsing reads bytes by index and building writes one integer's bytes, so the per-frame cost
stays a few operations, compiled or not. Not here: what a frame means to a connection
(:mod:`.connection`), HPACK (:mod:`.hpack`).
"""

from __future__ import annotations

from typing import Final

# --- frame types ---------------------------------------------------------------------------
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# --- flags ---------------------------------------------------------------------------------
FLAG_END_STREAM: Final = 0x1
FLAG_ACK: Final = 0x1
FLAG_END_HEADERS: Final = 0x4
FLAG_PADDED: Final = 0x8
FLAG_PRIORITY: Final = 0x20

# --- error codes (section 7) ---------------------------------------------------------------
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
SETTINGS_TIMEOUT: Final = 0x4
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
CONNECT_ERROR: Final = 0xA
ENHANCE_YOUR_CALM: Final = 0xB
INADEQUATE_SECURITY: Final = 0xC
HTTP_1_1_REQUIRED: Final = 0xD

# --- settings (section 6.5.2) --------------------------------------------------------------
SETTINGS_HEADER_TABLE_SIZE: Final = 0x1
SETTINGS_ENABLE_PUSH: Final = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS: Final = 0x3
SETTINGS_INITIAL_WINDOW_SIZE: Final = 0x4
SETTINGS_MAX_FRAME_SIZE: Final = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE: Final = 0x6

# --- limits --------------------------------------------------------------------------------
FRAME_HEADER_SIZE: Final = 9
DEFAULT_MAX_FRAME_SIZE: Final = 16384
LARGEST_MAX_FRAME_SIZE: Final = 16777215
DEFAULT_WINDOW_SIZE: Final = 65535
MAX_WINDOW_SIZE: Final = 2**31 - 1
MAX_STREAM_ID: Final = 2**31 - 1
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class FrameHeader:
    """A frame's 9-byte header, parsed."""

    length: int
    frame_type: int
    flags: int
    stream_id: int

    def __init__(self, length: int, frame_type: int, flags: int, stream_id: int) -> None:
        self.length = length
        self.frame_type = frame_type
        self.flags = flags
        self.stream_id = stream_id


def frame_length(data: bytes | bytearray, offset: int) -> int:
    """The payload length of the frame header at ``offset`` (24 bits)."""
    return (data[offset] << 16) | (data[offset + 1] << 8) | data[offset + 2]


def stream_id_at(data: bytes | bytearray, offset: int) -> int:
    """A 31-bit stream id at ``offset`` (the reserved bit dropped)."""
    return (
        ((data[offset] & 0x7F) << 24)
        | (data[offset + 1] << 16)
        | (data[offset + 2] << 8)
        | data[offset + 3]
    )


def parse_header(data: bytes | bytearray, offset: int = 0) -> FrameHeader:
    """The frame header at ``offset`` (the caller checked that 9 bytes are there)."""
    return FrameHeader(
        frame_length(data, offset),
        data[offset + 3],
        data[offset + 4],
        stream_id_at(data, offset + 5),
    )


def header_bytes(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    """The 9-byte header of a frame, built in one integer."""
    return ((length << 48) | (frame_type << 40) | (flags << 32) | stream_id).to_bytes(9, "big")


def write_frame(
    out: bytearray,
    frame_type: int,
    flags: int,
    stream_id: int,
    payload: bytes | bytearray | memoryview,
) -> None:
    """Append one whole frame to ``out``."""
    out += ((len(payload) << 48) | (frame_type << 40) | (flags << 32) | stream_id).to_bytes(
        9, "big"
    )
    out += payload


def build_frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One whole frame as bytes (tests and one-off frames)."""
    return header_bytes(len(payload), frame_type, flags, stream_id) + payload


# --- payloads: parse -----------------------------------------------------------------------


def unpad(payload: bytes, flags: int) -> bytes | None:
    """DATA/HEADERS payload without its padding (``None``: the pad length is not shorter than
    the payload, a PROTOCOL_ERROR)."""
    if not flags & FLAG_PADDED:
        return payload
    if not payload:
        return None
    pad = payload[0]
    if pad >= len(payload):
        return None
    return payload[1 : len(payload) - pad]


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """SETTINGS entries in order (the caller checked the length is a multiple of 6)."""
    entries: list[tuple[int, int]] = []
    for i in range(0, len(payload), 6):
        entries.append(
            (
                (payload[i] << 8) | payload[i + 1],
                int.from_bytes(payload[i + 2 : i + 6], "big"),
            )
        )
    return entries


def parse_u32(payload: bytes, offset: int = 0) -> int:
    """A 32-bit big-endian value (RST_STREAM's error code, GOAWAY's)."""
    return int.from_bytes(payload[offset : offset + 4], "big")


def parse_goaway(payload: bytes) -> tuple[int, int, bytes]:
    """GOAWAY: last stream id, error code, additional debug data (length >= 8 checked)."""
    return stream_id_at(payload, 0), parse_u32(payload, 4), payload[8:]


def parse_priority(payload: bytes, offset: int = 0) -> tuple[int, bool, int]:
    """A priority block (PRIORITY's payload, or HEADERS' with the PRIORITY flag): the stream
    depended on, whether exclusively, and the weight (1..256)."""
    return stream_id_at(payload, offset), bool(payload[offset] & 0x80), payload[offset + 4] + 1


# --- payloads: build -----------------------------------------------------------------------


def settings_payload(settings: dict[int, int]) -> bytes:
    """SETTINGS entries, in the dict's order."""
    out = bytearray()
    for code, value in settings.items():
        out += ((code << 32) | value).to_bytes(6, "big")
    return bytes(out)


def window_update_payload(increment: int) -> bytes:
    return increment.to_bytes(4, "big")


def rst_stream_payload(error_code: int) -> bytes:
    return error_code.to_bytes(4, "big")


def goaway_payload(last_stream_id: int, error_code: int, additional_data: bytes = b"") -> bytes:
    return ((last_stream_id << 32) | error_code).to_bytes(8, "big") + additional_data


def priority_payload(depends_on: int, weight: int, exclusive: bool = False) -> bytes:
    """PRIORITY's payload; ``weight`` is 1..256."""
    first = depends_on | (0x80000000 if exclusive else 0)
    return ((first << 8) | (weight - 1)).to_bytes(5, "big")


def push_promise_payload(promised_stream_id: int, block: bytes) -> bytes:
    """PUSH_PROMISE's payload (never sent by this core; tests build it to check the refusal)."""
    return promised_stream_id.to_bytes(4, "big") + block
