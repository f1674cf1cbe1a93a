"""Flood accounting for one app connection of the HTTP/2 front (:mod:`.h2_connection`): which
frames a peer sent, how many per event-loop turn are handled, and when it is abusing the sidecar.

HTTP/2 lets a client send frames that cost it a few bytes and cost the server real work: a call
opened and reset at once (rapid reset, CVE-2023-44487), PING, SETTINGS, PRIORITY and
WINDOW_UPDATE frames, empty DATA frames, RST_STREAM or HEADERS for streams long gone.

- :class:`FrameScan` reads the 9-byte header of each frame received, before the state machine
  (:mod:`sidecar.http2`) parses the bytes, counts frames by type (it reports no event for many
  of them) and says where to cut the bytes so that one loop turn hands it at most
  ``frames_per_turn`` frames.
- :class:`FloodGuard` keeps the counts of the connection's current window and decides: too many
  *premature resets* (calls the app reset before the sidecar finished them, while younger than
  ``min_stream_lifetime``: over ``max_premature_resets`` and over ``premature_reset_ratio`` of
  the calls it opened), or too many *control frames* (over ``max_control_frames`` plus an
  allowance for what an honest client sends back: 4 per call opened and per frame sent).

Pure bookkeeping, no I/O: closing the connection, the metric and the log line are
:mod:`.h2_connection`'s. What the state machine bounds itself (frame size, the size of a
header block with its CONTINUATION frames, header list size) is not counted again here.
"""

from __future__ import annotations

__all__ = ["CONTROL_KINDS", "FloodGuard", "FrameScan", "kind_name"]

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.models import GrpcFloodConfig

#: the client connection preface (RFC 9113 §3.4), which precedes the first frame.
PREFACE_LENGTH = 24
#: frame types as counted; ``EMPTY_DATA`` stands in for DATA frames that carry nothing (type 0
#: is never counted otherwise), ``UNKNOWN`` for every type past CONTINUATION.
EMPTY_DATA, HEADERS, CONTINUATION, UNKNOWN = 0, 1, 9, 10
_NAMES = (
    "empty_data",
    "headers",
    "priority",
    "rst_stream",
    "settings",
    "push_promise",
    "ping",
    "goaway",
    "window_update",
    "continuation",
    "unknown",
)
#: the kinds that count as control frames (HEADERS count only when they open no call).
CONTROL_KINDS = (0, 2, 3, 4, 5, 6, 7, 8, 10)
#: control frames allowed per call opened and per frame the sidecar sent: an honest client
#: answers a call with a RST_STREAM at most, and data with WINDOW_UPDATEs and a BDP PING.
CREDIT = 4
_END_STREAM, _PADDED = 0x1, 0x8


def kind_name(kind: int) -> str:
    """The counted kind's name, as the metric's ``reason`` label says it."""
    return _NAMES[kind]


class FrameScan:
    """Counts the frames of one connection's byte stream by kind, across reads, from their
    headers alone (a payload is skipped, never copied)."""

    __slots__ = ("_head", "_skip")

    def __init__(self) -> None:
        #: payload bytes of the current frame (or of the preface) still to come
        self._skip = PREFACE_LENGTH
        #: the start of a frame header split over two reads
        self._head = b""

    def scan(
        self, data: bytes | bytearray, budget: int, counts: list[int], headers_cost: int = 1
    ) -> int:
        """Count the frames in ``data``, adding to ``counts`` (indexed by kind), until they
        used up ``budget`` (a frame costs 1, a HEADERS frame ``headers_cost``); the offset to
        cut ``data`` at (its length when all of it fits): a frame boundary, so what follows is
        scanned again next turn."""
        end = len(data)
        pos = 0
        skip = self._skip
        seen = 0
        if self._head:  # finish a header split over reads
            need = 9 - len(self._head)
            if end < need:
                self._head += bytes(data)
                return end
            header = self._head + bytes(data[:need])
            self._head = b""
            skip = _count(header, 0, counts)
            pos, seen = need, headers_cost if header[3] == HEADERS else 1
        while True:
            if skip:
                take = min(skip, end - pos)
                pos += take
                skip -= take
                if skip:
                    break  # the payload goes on in the next read
            if seen >= budget or pos == end:
                break
            if end - pos < 9:
                self._head = bytes(data[pos:])
                pos = end
                break
            skip = _count(data, pos, counts)
            seen += headers_cost if data[pos + 3] == HEADERS else 1
            pos += 9
        self._skip = skip
        return pos


def _count(data: bytes | bytearray, at: int, counts: list[int]) -> int:
    """Count the frame whose header starts at ``at``; its payload length."""
    length = int.from_bytes(data[at : at + 3], "big")
    kind = data[at + 3]
    if kind == 0:
        flags = data[at + 4]
        # an empty DATA frame that does not end its stream moves nothing; padding is what a
        # flooder would hide one behind (gRPC clients never pad)
        if flags & _PADDED or (length == 0 and not flags & _END_STREAM):
            counts[EMPTY_DATA] += 1
    else:
        counts[kind if kind < UNKNOWN else UNKNOWN] += 1
    return length


class FloodGuard:
    """One connection's counts in the current window, and the verdict on them."""

    __slots__ = (
        "_base_sent",
        "_max_control",
        "_max_premature",
        "_ratio",
        "_start",
        "_window",
        "calls",
        "enabled",
        "frames",
        "min_lifetime",
        "premature",
    )

    def __init__(self, cfg: GrpcFloodConfig, now: float) -> None:
        self.enabled = cfg.enabled
        self._window = cfg.window
        self._max_premature = cfg.max_premature_resets
        self._ratio = cfg.premature_reset_ratio
        self._max_control = cfg.max_control_frames
        self.min_lifetime = cfg.min_stream_lifetime
        self._start = now
        self._base_sent = 0
        #: frames received in the window, by kind (:class:`FrameScan` adds to it)
        self.frames = [0] * (UNKNOWN + 1)
        #: calls opened in the window
        self.calls = 0
        #: calls the app reset before they finished and while younger than ``min_lifetime``
        self.premature = 0

    def roll(self, now: float, sent: int) -> None:
        """Start a new window when the current one is over (``sent``: frames the connection
        sent so far, which earn control frames from now on)."""
        if now - self._start >= self._window:
            self._start = now
            self._base_sent = sent
            self.frames = [0] * (UNKNOWN + 1)
            self.calls = 0
            self.premature = 0

    def control(self) -> int:
        """Control frames received in the window."""
        frames = self.frames
        headers_alone = max(0, frames[HEADERS] - self.calls)
        return sum(frames[kind] for kind in CONTROL_KINDS) + headers_alone

    def verdict(self, sent: int) -> str | None:
        """``None`` while the peer stays within the limits, else why it does not (the name of
        the metric's ``reason``): ``rapid_reset``, or the control frame kind it sent most."""
        if not self.enabled:
            return None
        if self.premature > self._max_premature and self.premature > self._ratio * self.calls:
            return "rapid_reset"
        allowance = self._max_control + CREDIT * (self.calls + sent - self._base_sent)
        if self.control() <= allowance:
            return None
        frames = self.frames
        kinds = [*CONTROL_KINDS, HEADERS]
        counted = [frames[k] if k != HEADERS else frames[k] - self.calls for k in kinds]
        return kind_name(kinds[counted.index(max(counted))])

    def summary(self) -> dict[str, int]:
        """The window's counts, for the log line (numbers only: nothing the peer sent)."""
        return {"calls": self.calls, "premature_resets": self.premature, "control": self.control()}
