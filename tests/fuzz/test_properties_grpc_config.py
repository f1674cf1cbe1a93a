"""Property tests of the gRPC port's HTTP/2 front and of the config loader (hypothesis, no
sockets). The frame tests build HTTP/2 frames one by one (valid calls, then any frame type with
any flags, stream and payload) and drive the front's ``data_received`` through the fuzz harness;
the config tests write generated data as YAML and mutate the documented example."""

from __future__ import annotations

import hpack
import yaml
from hyperframe.frame import (
    DataFrame,
    HeadersFrame,
    SettingsFrame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .config_loader import config_text_target
from .grpc_h2 import MAX_MESSAGE, run_h2
from .seeds import _documented_example

SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_HELLO = SettingsFrame(0).serialize() + SettingsFrame(0, flags=["ACK"]).serialize()
streams = st.sampled_from([1, 3, 5, 7, 2, 0, 0x7FFFFFFF])
_EXTRA = [("grpc-encoding", "gzip"), ("grpc-timeout", "1m"), ("x-bin", "AA"), ("te", "x")]


def _call_head(path: str, extra: list[tuple[str, str]]) -> bytes:
    head = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "fuzz"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra,
    ]
    return bytes(hpack.Encoder().encode(head))


def _message(data: bytes) -> bytes:
    return b"\0" + len(data).to_bytes(4, "big") + data


def _frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    """An HTTP/2 frame as written on the wire, whatever its fields say (hyperframe would
    refuse the invalid ones)."""
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + payload


DATA, HEADERS, RST, SETTINGS_, WINDOW, CONTINUATION = 0, 1, 3, 4, 8, 9
END_STREAM, END_HEADERS = 0x1, 0x4


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """One frame of any kind, flags and stream; HEADERS carry a gRPC call's head (or junk)."""
    sid = draw(streams)
    kind = draw(st.sampled_from(["headers", "data", "rst", "window", "settings", "other"]))
    if kind == "headers":
        path = draw(st.sampled_from(["/fuzz.Echo/Unary", "/fuzz.Echo/Bidi", "/x.Y/Z", "", "/"]))
        extra = draw(st.lists(st.sampled_from(_EXTRA), max_size=2))
        block = _call_head(path, extra) if draw(st.booleans()) else draw(st.binary(max_size=20))
        flags = draw(st.sampled_from([END_HEADERS, END_HEADERS | END_STREAM, 0, END_STREAM]))
        frame = _frame(HEADERS, flags, sid, block)
        if not flags & END_HEADERS and draw(st.booleans()):
            frame += _frame(CONTINUATION, END_HEADERS, sid, b"")
        return frame
    if kind == "data":
        payload = draw(st.one_of(st.binary(max_size=40), st.binary(max_size=40).map(_message)))
        return _frame(DATA, draw(st.sampled_from([0, END_STREAM])), sid, payload)
    if kind == "rst":
        return _frame(RST, 0, sid, draw(st.integers(0, 13)).to_bytes(4, "big"))
    if kind == "window":
        return _frame(WINDOW, 0, sid, draw(st.integers(0, 2**31 - 1)).to_bytes(4, "big"))
    if kind == "settings":
        setting = draw(st.integers(1, 8)).to_bytes(2, "big") + draw(st.integers(0, 2**24)).to_bytes(
            4, "big"
        )
        return _frame(SETTINGS_, draw(st.sampled_from([0, 1])), 0, setting)
    return _frame(
        draw(st.integers(2, 12)), draw(st.integers(0, 255)), sid, draw(st.binary(max_size=16))
    )


@SETTINGS
@given(st.lists(frames(), max_size=12), st.integers(0, 0x7F))
def test_any_frame_sequence_leaves_no_call_behind(sequence: list[bytes], control: int) -> None:
    """Whatever frames an app sends (resets, windows, bad headers, data on unknown streams),
    the front answers or closes without an unexpected error, writes only valid frames, and
    after the app leaves no call's task, count or buffer remains."""
    run_h2(_HELLO + b"".join(sequence), control)


@SETTINGS
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=5),
    st.sampled_from(["/fuzz.Echo/Unary", "/fuzz.Echo/Bidi"]),
    st.integers(0, 0x7F),
)
def test_a_valid_call_cut_anywhere_delivers_every_message(
    messages: list[bytes], path: str, control: int
) -> None:
    """A well-formed call, however TCP cuts its frames, reaches the upstream once with every
    message whole; one over the receive limit is refused before the upstream reads it."""
    data = b"".join(_message(m) for m in messages)
    head = HeadersFrame(1, _call_head(path, []), flags=["END_HEADERS"]).serialize()
    body = DataFrame(1, data, flags=["END_STREAM"]).serialize()
    run = run_h2(_HELLO + head + body, control)
    assert run.calls == [path]
    if all(len(m) <= MAX_MESSAGE for m in messages):
        assert run.messages == len(messages)


_KEYS = [
    "admin",
    "http",
    "grpc",
    "upstreams",
    "routes",
    "plugins",
    "telemetry",
    "shutdown",
    "inbound",
    "ratelimit_backends",
    "url",
    "adapter",
    "timeout",
    "retry",
    "match",
    "upstream",
    "path_prefix",
    "headers",
    "auth",
    "type",
    "env",
    "file",
    "rate",
    "attempts",
    "on",
    "address",
    "request_headers",
    "services",
    "disabled",
    "x",
]
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False),
    st.sampled_from(
        [
            "1s",
            "10MiB",
            "127.0.0.1:0",
            "http://127.0.0.1:1",
            "${FUZZ_SET}",
            "${NOPE}",
            "$${x}",
            "${",
            "10/s",
            "api_key",
            "grpc",
            "echo",
        ]
    ),
    st.text(max_size=8),
)
config_data = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(_KEYS), children, max_size=4)
    ),
    max_leaves=30,
)


@SETTINGS
@given(st.dictionaries(st.sampled_from(_KEYS[:10]), config_data, max_size=5))
def test_any_config_data_is_accepted_or_refused_with_problems(data: dict[str, object]) -> None:
    """Whatever shape a config file has, loading it ends in a config or in problems, each
    naming the file and a reason; never an exception of another kind."""
    config_text_target(yaml.safe_dump(data))


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.sampled_from(
                ["drop", "double", ":", "\t", "&a ", "*a", "- ", "{", "'", "\\", "\x00"]
            ),
        ),
        max_size=4,
    )
)
def test_the_documented_example_mutated_is_accepted_or_refused_with_problems(
    edits: list[tuple[int, str]],
) -> None:
    """The documented example with lines dropped or doubled, or stray YAML syntax inserted,
    still loads or is refused with problems."""
    lines = _documented_example().decode().splitlines()
    for at, edit in edits:
        i = at % len(lines)
        if edit == "drop":
            del lines[i]
        elif edit == "double":
            lines.insert(i, lines[i])
        else:
            col = at % (len(lines[i]) + 1)
            lines[i] = lines[i][:col] + edit + lines[i][col:]
    config_text_target("\n".join(lines))
