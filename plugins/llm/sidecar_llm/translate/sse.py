"""Server-sent events framing: an incremental, bounded parser and an encoder.

Follows the WHATWG event-stream rules the providers use: lines end in CRLF, LF or CR; `:`
starts a comment; `data` lines of one event are joined with newlines; a blank line ends the
event; `id` and `retry` are ignored (neither provider resumes streams). It does not interpret
the data (`[DONE]` and JSON are the caller's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser", "encode_sse"]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event: its `event` name (None when unnamed) and joined `data`."""

    event: str | None
    data: str


class SSEParser:
    """Feed bytes as they arrive, get the events they complete.

    Events may be split anywhere, even inside a UTF-8 character or between CR and LF. One
    event (its pending line plus its data so far) may hold at most `max_event_bytes`; past
    that `feed` raises `ValueError`, so a provider cannot grow our memory without end.
    """

    def __init__(self, max_event_bytes: int = 1 << 20) -> None:
        self._max = max_event_bytes
        self._buffer = bytearray()
        self._event: str | None = None
        self._data: list[str] = []
        self._data_bytes = 0
        self._at_start = True
        self._after_cr = False

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Parse `data`; return the events whose terminating blank line it completed."""
        if self._after_cr and data:
            # The previous chunk ended in CR, already taken as a line end: its LF half, if
            # this chunk starts with it, ends nothing more.
            self._after_cr = False
            if data.startswith(b"\n"):
                data = data[1:]
        # the buffer held no line end before this chunk: search only the new bytes (searching
        # a long pending line again on every chunk is quadratic: minutes for one 16 MB event)
        scan_from = len(self._buffer)
        self._buffer += data
        if self._at_start:
            # A UTF-8 BOM may open the stream (and only there): wait until it can be told apart.
            if len(self._buffer) < len(_BOM) and _BOM.startswith(self._buffer):
                return []
            self._at_start = False
            if self._buffer.startswith(_BOM):
                del self._buffer[: len(_BOM)]
                scan_from = 0
        events: list[SSEEvent] = []
        position = 0
        while True:
            match = _LINE_END.search(self._buffer, max(position, scan_from))
            if match is None:
                break
            # A CR at the very end may be the first half of a CRLF split across chunks.
            self._after_cr = match.group() == b"\r" and match.end() == len(self._buffer)
            event = self._line(bytes(self._buffer[position : match.start()]))
            if event is not None:
                events.append(event)
            position = match.end()
        del self._buffer[:position]
        if len(self._buffer) + self._data_bytes > self._max:
            raise ValueError(f"server-sent event larger than {self._max} bytes")
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_bytes += len(raw) + 1
            if self._data_bytes > self._max:
                raise ValueError(f"server-sent event larger than {self._max} bytes")
        elif name == "event":
            self._event = value
        return None

    def _dispatch(self) -> SSEEvent | None:
        event, data = self._event, self._data
        self._event, self._data, self._data_bytes = None, [], 0
        # An event with no data lines is discarded, as browsers do.
        if not data:
            return None
        return SSEEvent(event or None, "\n".join(data))


def encode_sse(data: str, event: str | None = None) -> bytes:
    """One event in wire form; multi-line `data` becomes several `data:` lines."""
    lines = [f"event: {event}"] if event is not None else []
    lines.extend(f"data: {line}" for line in re.split(r"\r\n|\r|\n", data))
    return ("\n".join(lines) + "\n\n").encode("utf-8")
