"""Flood accounting of the gRPC port's HTTP/2 front (sidecar.grpc.h2_abuse), without sockets:
frames counted by kind from raw bytes across reads, the per-turn cut, and the verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.config.models import GrpcFloodConfig
from sidecar.grpc.h2_abuse import FloodGuard, FrameScan, kind_name

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PING, WINDOW_UPDATE, CONTINUATION = 0, 1, 2, 3, 4, 6, 8, 9


def frame(kind: int, flags: int = 0, stream: int = 0, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload
    )


def counts() -> list[int]:
    return [0] * 11


def named(c: list[int]) -> dict[str, int]:
    return {kind_name(k): n for k, n in enumerate(c) if n}


def test_frames_are_counted_by_kind_after_the_preface() -> None:
    """Every frame a peer sends is seen, by kind, whether h2 reports an event for it or not."""
    data = PREFACE + b"".join(
        [
            frame(SETTINGS),
            frame(SETTINGS, flags=1),
            frame(PING, payload=bytes(8)),
            frame(WINDOW_UPDATE, payload=(1).to_bytes(4, "big")),
            frame(PRIORITY, stream=3, payload=bytes(5)),
            frame(RST, stream=1, payload=bytes(4)),
            frame(HEADERS, flags=4, stream=5, payload=b"\x82"),
            frame(CONTINUATION, stream=5, payload=b"x"),
            frame(0x42),  # an unknown extension type
        ]
    )
    c = counts()
    assert FrameScan().scan(data, 100, c) == len(data)
    assert named(c) == {
        "settings": 2,
        "ping": 1,
        "window_update": 1,
        "priority": 1,
        "rst_stream": 1,
        "headers": 1,
        "continuation": 1,
        "unknown": 1,
    }


def test_only_data_frames_that_carry_nothing_count_as_empty() -> None:
    """A DATA frame with a message, or an empty one ending the stream, is progress; an empty
    one that does not end it, or a padded one, is what a flood is made of."""
    data = PREFACE + b"".join(
        [
            frame(DATA, stream=1, payload=b"\0\0\0\0\0"),  # an empty gRPC message: progress
            frame(DATA, flags=1, stream=1),  # END_STREAM: progress
            frame(DATA, stream=1),  # nothing
            frame(DATA, flags=8, stream=1, payload=b"\x02xx"),  # padding only
        ]
    )
    c = counts()
    FrameScan().scan(data, 100, c)
    assert named(c) == {"empty_data": 2}


def test_a_frame_split_anywhere_across_reads_is_counted_once() -> None:
    """Reads cut frames (and their headers) at any byte: the counts do not depend on where."""
    stream = PREFACE + b"".join(frame(PING, payload=bytes(8)) for _ in range(5))
    for cut_a in range(1, len(stream)):
        for cut_b in (cut_a + 3, cut_a + 17):
            scan, c = FrameScan(), counts()
            for part in (stream[:cut_a], stream[cut_a:cut_b], stream[cut_b:]):
                assert scan.scan(part, 100, c) == len(part)
            assert named(c) == {"ping": 5}, (cut_a, cut_b)


def test_a_turn_stops_at_a_frame_boundary_after_its_budget() -> None:
    """At most ``frames_per_turn`` frames per turn: the rest is cut off at a frame boundary and
    counted when it is handed in again."""
    pings = [frame(PING, payload=i.to_bytes(8, "big")) for i in range(10)]
    data = PREFACE + b"".join(pings)
    scan, c = FrameScan(), counts()
    cut = scan.scan(data, 4, c)
    assert cut == len(PREFACE) + 4 * len(pings[0])
    assert c[PING] == 4
    rest = data[cut:]
    cut = scan.scan(rest, 4, c)
    assert cut == 4 * len(pings[0])
    assert scan.scan(rest[cut:], 4, c) == 2 * len(pings[0])
    assert c[PING] == 10


def test_a_big_frame_fills_no_more_budget_than_a_small_one() -> None:
    """A 16 KiB DATA frame costs one frame of the budget, and its payload crosses reads."""
    big = frame(DATA, stream=1, payload=b"x" * 16384)
    data = PREFACE + big * 3
    scan, c = FrameScan(), counts()
    assert scan.scan(data[:1000], 1, c) == 1000  # the first frame's payload goes on
    rest = data[1000:]
    # the rest of the first frame, then one new frame: the third waits for the next turn
    assert scan.scan(rest, 1, c) == len(PREFACE) + 2 * len(big) - 1000
    assert c == counts()  # DATA with a message is not counted as anything


def test_headers_cost_more_of_the_budget_when_asked() -> None:
    """A HEADERS frame can weigh more than one frame (h2's cost grows with the open streams)."""
    block = frame(HEADERS, flags=4, stream=1, payload=b"\x82")
    data = PREFACE + block * 4
    c = counts()
    assert FrameScan().scan(data, 6, c, headers_cost=3) == len(PREFACE) + 2 * len(block)
    assert c[HEADERS] == 2


def guard(**limits: Any) -> FloodGuard:
    return FloodGuard(GrpcFloodConfig(**limits), now=0.0)


def test_premature_resets_are_allowed_up_to_the_floor() -> None:
    """A client may reset ``max_premature_resets`` young calls a window, whatever their share."""
    g = guard(max_premature_resets=10)
    g.calls = g.premature = 10
    assert g.verdict(sent=0) is None
    g.premature = 11
    g.calls = 11
    assert g.verdict(sent=0) == "rapid_reset"


def test_past_the_floor_resets_must_be_a_minority_of_the_calls() -> None:
    """A busy client that cancels some of its calls is never cut off; one that resets most of
    what it opens is, once past the floor."""
    g = guard(max_premature_resets=10, premature_reset_ratio=0.5)
    g.calls, g.premature = 200, 100
    assert g.verdict(sent=0) is None
    g.premature = 101
    assert g.verdict(sent=0) == "rapid_reset"


def test_control_frames_are_allowed_up_to_the_limit_plus_what_the_client_earned() -> None:
    """PING, SETTINGS, WINDOW_UPDATE... past ``max_control_frames`` close the connection,
    except what the calls opened and the frames sent earn (4 each); the reason names the kind
    sent most."""
    g = guard(max_control_frames=100)
    g.frames[PING] = 100
    assert g.verdict(sent=0) is None
    g.frames[PING] = 101
    assert g.verdict(sent=0) == "ping"
    assert g.verdict(sent=1) is None  # a frame sent earns 4
    g.calls = 1
    g.frames[WINDOW_UPDATE] = 104
    assert g.verdict(sent=1) == "window_update"


def test_headers_that_open_no_call_count_as_control_frames() -> None:
    """HEADERS frames beyond the calls they opened (on closed streams, trailers) count."""
    g = guard(max_control_frames=10)
    g.calls = 5  # 5 calls earn 20 control frames
    g.frames[HEADERS] = 5 + 30
    assert g.verdict(sent=0) is None
    g.frames[HEADERS] = 5 + 31
    assert g.verdict(sent=0) == "headers"


def test_the_window_starts_over_but_earned_credit_is_counted_from_its_start() -> None:
    """Counts are per ``window``: a new window forgets the old one, frames sent before it earn
    nothing in it."""
    g = guard(max_control_frames=10, window=10.0)
    g.frames[SETTINGS] = 23
    g.calls, g.premature = 3, 3
    g.roll(now=9.9, sent=0)
    assert g.verdict(sent=0) == "settings"
    g.roll(now=10.0, sent=50)
    assert g.frames[SETTINGS] == 0 and g.calls == 0 and g.premature == 0
    g.frames[SETTINGS] = 11
    assert g.verdict(sent=50) == "settings"
    assert g.verdict(sent=51) is None


def test_disabled_protection_never_decides_against_a_connection() -> None:
    """``enabled: false`` leaves every connection open, whatever it sends."""
    g = guard(enabled=False, max_control_frames=1, max_premature_resets=1)
    g.frames[PING] = 10_000
    g.calls = g.premature = 10_000
    assert g.verdict(sent=0) is None


def test_the_summary_holds_numbers_only() -> None:
    """The log line gets counts, never anything the peer sent."""
    g = guard()
    g.calls, g.premature = 7, 2
    g.frames[PING] = 3
    assert g.summary() == {"calls": 7, "premature_resets": 2, "control": 3}


@pytest.mark.parametrize(
    ("key", "value"),
    [("window", "0s"), ("max_premature_resets", 0), ("premature_reset_ratio", 1.5)],
)
def test_limits_that_would_disable_nothing_sensible_are_refused(key: str, value: Any) -> None:
    """A zero window, a floor of zero or a share over 1 is a config error at load time."""
    with pytest.raises(ValueError, match=key):
        GrpcFloodConfig(**{key: value})
