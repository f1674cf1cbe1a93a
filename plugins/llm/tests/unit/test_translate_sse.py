"""Server-sent events framing: parsing however the bytes are split, and encoding."""

from __future__ import annotations

import pytest
from sidecar_llm.translate import SSEEvent, SSEParser, encode_sse

# An Anthropic stream as sent: named events, a ping, a comment, a non-ASCII character.
ANTHROPIC_WIRE = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1"}}\n\n'
    b"event: ping\n"
    b'data: {"type": "ping"}\n\n'
    b": keep-alive comment\n\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"text":"caf\xc3\xa9"}}\n\n'
)
ANTHROPIC_EVENTS = [
    SSEEvent("message_start", '{"type":"message_start","message":{"id":"msg_1"}}'),
    SSEEvent("ping", '{"type": "ping"}'),
    SSEEvent("content_block_delta", '{"type":"content_block_delta","delta":{"text":"café"}}'),
]


def parse_in_pieces(wire: bytes, cuts: list[int]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        events.extend(parser.feed(wire[start:end]))
    return events


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_events_split_at_every_byte_boundary_parse_the_same(line_end: bytes) -> None:
    """However the network splits the stream (even inside CRLF or UTF-8), events are whole."""
    wire = ANTHROPIC_WIRE.replace(b"\n", line_end)
    assert parse_in_pieces(wire, []) == ANTHROPIC_EVENTS
    for cut in range(1, len(wire)):
        assert parse_in_pieces(wire, [cut]) == ANTHROPIC_EVENTS, cut
    assert parse_in_pieces(wire, list(range(1, len(wire)))) == ANTHROPIC_EVENTS


def test_openai_data_only_events_and_done_come_through() -> None:
    """OpenAI sends unnamed `data:` events and a final `[DONE]`."""
    wire = b'data: {"id":"chatcmpl-1"}\n\ndata: [DONE]\n\n'
    assert SSEParser().feed(wire) == [
        SSEEvent(None, '{"id":"chatcmpl-1"}'),
        SSEEvent(None, "[DONE]"),
    ]


def test_multi_line_data_is_joined_and_field_rules_are_followed() -> None:
    """Data lines join with newlines; one space after the colon is removed; id/retry ignored."""
    wire = b"id: 7\nretry: 10\nevent:x\ndata:a\ndata:  b\ndata\n\nevent: empty\n\n"
    assert SSEParser().feed(wire) == [SSEEvent("x", "a\n b\n")]


def test_an_event_is_only_dispatched_by_its_blank_line() -> None:
    """A partial event waits for more bytes instead of being cut short."""
    parser = SSEParser()
    assert parser.feed(b"event: a\ndata: 1\n") == []
    assert parser.feed(b"\n") == [SSEEvent("a", "1")]


def test_a_leading_byte_order_mark_is_ignored_even_when_split() -> None:
    """A UTF-8 BOM at the start of the stream is not part of the first field name."""
    wire = b"\xef\xbb\xbfdata: x\n\n"
    for cut in range(1, 4):
        assert parse_in_pieces(wire, [cut]) == [SSEEvent(None, "x")]


def test_an_event_past_the_bound_raises() -> None:
    """A provider cannot make the gateway buffer without end, with or without newlines."""
    with pytest.raises(ValueError, match="larger than 64 bytes"):
        SSEParser(max_event_bytes=64).feed(b"data: " + b"x" * 100)
    parser = SSEParser(max_event_bytes=64)
    with pytest.raises(ValueError, match="larger than 64 bytes"):
        for _ in range(10):
            parser.feed(b"data: " + b"x" * 10 + b"\n")
    small = SSEParser(max_event_bytes=64)
    for _ in range(10):  # the bound is per event, not per stream
        assert small.feed(b"data: " + b"x" * 10 + b"\n\n") == [SSEEvent(None, "x" * 10)]


def test_encoded_events_parse_back_to_the_same_event() -> None:
    """encode_sse writes what SSEParser (and the SDKs) read, multi-line data included."""
    assert encode_sse('{"a":1}') == b'data: {"a":1}\n\n'
    assert encode_sse('{"type":"ping"}', event="ping") == b'event: ping\ndata: {"type":"ping"}\n\n'
    for event in [SSEEvent(None, "one\ntwo"), SSEEvent("error", ""), SSEEvent("x", "é")]:
        assert SSEParser().feed(encode_sse(event.data, event.event)) == [event]
