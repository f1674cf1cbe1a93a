"""Frame headers and payloads as sidecar.http2.frames builds and parses them, checked against
``hyperframe``'s reading and writing of the same frames."""

from __future__ import annotations

import pytest
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from sidecar.http2 import frames as f
from sidecar.http2.errors import FrameSizeError

from .wire import raw_server


def parsed(data: bytes) -> Frame:
    frame, length = Frame.parse_frame_header(memoryview(data[:9]))
    frame.parse_body(memoryview(data[9 : 9 + length]))
    return frame


def test_frame_header_round_trip() -> None:
    """The 9-byte header carries length, type, flags and a 31-bit stream id, both ways."""
    data = f.build_frame(f.HEADERS, f.FLAG_END_HEADERS | f.FLAG_END_STREAM, 2**31 - 1, b"abc")
    header = f.parse_header(data)
    assert (header.length, header.frame_type, header.flags, header.stream_id) == (
        3,
        f.HEADERS,
        5,
        2**31 - 1,
    )
    frame = parsed(data)
    assert isinstance(frame, HeadersFrame) and frame.stream_id == 2**31 - 1
    reserved = bytearray(data)
    reserved[5] |= 0x80  # the reserved bit is ignored on receipt
    assert f.parse_header(bytes(reserved)).stream_id == 2**31 - 1


def test_payloads_built_as_hyperframe_reads_them() -> None:
    """SETTINGS, WINDOW_UPDATE, RST_STREAM, GOAWAY and PRIORITY payloads read back right."""
    settings = parsed(f.build_frame(f.SETTINGS, 0, 0, f.settings_payload({4: 1000, 3: 7})))
    assert isinstance(settings, SettingsFrame) and settings.settings == {4: 1000, 3: 7}
    update = parsed(f.build_frame(f.WINDOW_UPDATE, 0, 3, f.window_update_payload(2**31 - 1)))
    assert isinstance(update, WindowUpdateFrame) and update.window_increment == 2**31 - 1
    reset = parsed(f.build_frame(f.RST_STREAM, 0, 3, f.rst_stream_payload(f.CANCEL)))
    assert isinstance(reset, RstStreamFrame) and reset.error_code == f.CANCEL
    goaway = parsed(f.build_frame(f.GOAWAY, 0, 0, f.goaway_payload(9, 11, b"calm")))
    assert isinstance(goaway, GoAwayFrame)
    assert (goaway.last_stream_id, goaway.error_code, goaway.additional_data) == (9, 11, b"calm")
    priority = parsed(f.build_frame(f.PRIORITY, 0, 5, f.priority_payload(3, 256, True)))
    assert isinstance(priority, PriorityFrame)
    assert (priority.depends_on, priority.stream_weight, priority.exclusive) == (3, 255, True)


def test_payloads_hyperframe_builds_parse_right() -> None:
    """hyperframe's SETTINGS, GOAWAY, PRIORITY and padded DATA parse to the same values."""
    assert f.parse_settings(SettingsFrame(0, settings={1: 0, 5: 2**14}).serialize()[9:]) == [
        (1, 0),
        (5, 2**14),
    ]
    goaway = GoAwayFrame(0, last_stream_id=7, error_code=2, additional_data=b"x").serialize()
    assert f.parse_goaway(goaway[9:]) == (7, 2, b"x")
    priority = PriorityFrame(3, depends_on=1, stream_weight=15, exclusive=True).serialize()
    assert f.parse_priority(priority[9:]) == (1, True, 16)
    padded = DataFrame(1, data=b"body", flags=["PADDED"])
    padded.pad_length = 3
    assert f.unpad(padded.serialize()[9:], f.FLAG_PADDED) == b"body"
    assert f.unpad(b"\x05abcd", f.FLAG_PADDED) is None
    assert f.unpad(b"", f.FLAG_PADDED) is None


def test_a_cut_frame_is_buffered_at_most_once() -> None:
    """A frame cut by reads is held up to its size; one claiming too much is refused at once."""
    server = raw_server()
    frame = f.build_frame(0xFA, 0, 0, b"\0" * 16384)
    for i in range(len(frame) - 1):
        server.receive_data(frame[i : i + 1])
        assert len(server.partial) <= 16384 + 9
    server.receive_data(frame[-1:])
    assert len(server.partial) == 0
    with pytest.raises(FrameSizeError):
        server.receive_data(f.header_bytes(16385, 0xFA, 0, 0))
    assert server.closed
