"""Property tests of the HTTP/1.1 parsers (hypothesis, no sockets): the app-facing listener,
the upstream response reader, path normalisation. Each example runs through the fuzz harness,
which checks the properties every input must keep (docs/fuzzing.md); the tests here add what
a generated input lets us know: which requests were valid, how long the input was."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.exchange import Headers
from sidecar.http1 import HOP_BY_HOP

from .headers import _connection_tokens
from .http_listener import BODY_LIMIT, LIMITS, run_listener
from .routing import check_path
from .strategies import BAD_HEADS, paths, requests, responses
from .upstream_response import run_upstream

#: reproducible runs: the suite must not fail on one machine and pass on the next
SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
controls = st.integers(0, 0x3F)  # the cuts; body limit on, half-close on
MIB = 1 << 20


@SETTINGS
@given(st.lists(requests(), min_size=1, max_size=4), controls)
def test_pipelined_requests_cut_anywhere_keep_every_listener_property(
    batch: list[bytes], control: int
) -> None:
    """Whatever the requests and however TCP cuts them, the listener answers or refuses
    without crashing, and nothing hop-by-hop (or named by `Connection`) reaches the upstream."""
    run = run_listener(b"".join(batch), control)
    named = set().union(*(_connection_tokens(r.split(b"\r\n\r\n", 1)[0]) for r in batch))
    for ex in run.forwarded:
        assert not {k for k, _ in ex.headers} & (HOP_BY_HOP | named)


@SETTINGS
@given(
    st.lists(requests(keep_alive=True), max_size=3),
    st.sampled_from(BAD_HEADS),
    st.lists(requests(), max_size=2),
)
def test_a_refused_request_and_everything_after_it_never_reach_the_upstream(
    before: list[bytes], bad: bytes, after: list[bytes]
) -> None:
    """Requests sent before a malformed one are answered; the malformed one gets its 4xx and
    closes the connection; neither it nor anything pipelined behind it reaches the upstream."""
    run = run_listener(b"".join([*before, bad, *after]))
    assert len(run.forwarded) <= len(before)
    assert run.responses, "the refusal was written"
    status, code, handled = run.responses[-1]
    assert 400 <= status < 500 and code is not None and not handled


@settings(SETTINGS, max_examples=10)
@given(st.integers(MIB, 4 * MIB), st.sampled_from(["header", "uri", "headers"]))
def test_an_endless_request_head_is_refused_at_its_limit(size: int, part: str) -> None:
    """A head that never ends (one header line, the target, header after header) is refused
    once past its limit, without the listener buffering what follows (the harness checks the
    buffers after every read)."""
    if part == "header":
        data = b"GET /up/a HTTP/1.1\r\nhost: up\r\nx-long: " + b"a" * size
    elif part == "uri":
        data = b"GET /up/" + b"u" * size
    else:
        data = b"GET /up/a HTTP/1.1\r\nhost: up\r\n" + b"x: 1\r\n" * (size // 6)
    run = run_listener(data, control=3)
    assert [(s, c) for s, c, _ in run.responses] in (
        [(431, "headers_too_large")],
        [(414, "uri_too_long")],
    )
    assert LIMITS["max_header_bytes"] < size


@settings(SETTINGS, max_examples=10)
@given(st.integers(MIB, 4 * MIB), st.booleans())
def test_a_long_body_streams_through_with_bounded_buffers(size: int, chunked: bool) -> None:
    """Megabytes of body (no limit configured) reach the upstream while buffers stay under
    their high-water marks; with the limit configured, the same body is refused with 413."""
    head = b"POST /up/a HTTP/1.1\r\nhost: up\r\n"
    if chunked:
        block = b"%x\r\n%s\r\n" % (65536, b"b" * 65536)
        data = head + b"transfer-encoding: chunked\r\n\r\n" + block * (size // 65536) + b"0\r\n\r\n"
    else:
        data = head + b"content-length: %d\r\n\r\n" % size + b"b" * size
    unlimited = run_listener(data, control=0x80 | 3)
    assert [s for s, _, _ in unlimited.responses] == [200]
    assert unlimited.body_bytes == size // 65536 * 65536 if chunked else size
    limited = run_listener(data, control=3)
    assert limited.responses[-1][:2] == (413, "body_too_large") and size > BODY_LIMIT


@SETTINGS
@given(paths)
def test_normalised_paths_are_normal_and_stable(path: str) -> None:
    """A normalised path has no dot or empty segment, no escape the upstream would decode
    into something routing did not see, and normalising it again changes nothing."""
    check_path(path, "up", Headers())


@SETTINGS
@given(responses(), st.integers(0, 0xFF))
def test_any_upstream_response_cut_anywhere_is_read_or_refused(data: bytes, control: int) -> None:
    """An upstream's answer, valid or not, however cut, becomes a response or an upstream
    error; a connection handed back to the pool reads the next response correctly."""
    run_upstream(data, control)


@settings(SETTINGS, max_examples=10)
@given(st.integers(MIB, 4 * MIB), st.sampled_from(["header", "body"]))
def test_an_endless_upstream_head_is_refused_and_a_long_body_streams(size: int, part: str) -> None:
    """An upstream that sends a head without end is cut at its limit; megabytes of body are
    read with reading paused whenever the app is behind (the harness checks the buffers)."""
    if part == "header":
        run = run_upstream(b"HTTP/1.1 200 OK\r\nx-long: " + b"a" * size, control=3)
        assert run.error is not None and run.error.code == "upstream_protocol"
    else:
        head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size
        run = run_upstream(head + b"b" * size, control=0x80 | 3)
        assert len(run.body) == size and run.body_error is None
