"""Bugs the fuzzers found, each pinned by the behaviour a user relies on (the inputs that found
them are in tests/fuzz/corpus/ too; docs/fuzzing.md lists them)."""

from __future__ import annotations

import time

import pytest

from sidecar.config import load_data, parse_config
from sidecar.errors import BadRequest, ConfigError
from sidecar.routing import normalize_path
from tests.unit.fake_transport import respond, standalone

from .http_listener import run_listener


@pytest.mark.parametrize(
    "raw",
    [
        "/up/%%32%46etc",  # decodes to "/up/%2Fetc": an encoded '/' the upstream decodes
        "/api/%%32%65%%32%65/admin",  # "%2e%2e": a '..' the upstream resolves past the prefix
        "/up/%%30%30",  # "%00": an encoded NUL
        "/up/%3%30x",  # "%30" completes the '%3' before it
    ],
)
def test_a_path_whose_decoding_makes_a_new_escape_is_refused(raw: str) -> None:
    """Routing and policy match the path the upstream will decode: a '%' before encoded hex
    digits would make a second escape (an encoded '/', '..' or NUL) only the upstream decodes."""
    with pytest.raises(BadRequest, match="new escape"):
        normalize_path(raw)


def test_lone_percent_signs_still_pass_unchanged() -> None:
    """A '%' that starts no escape is kept as sent, as before: only new escapes are refused."""
    assert normalize_path("/up/100%") == "/up/100%"
    assert normalize_path("/up/%%3c%33") == "/up/%%3C3"


async def test_bytes_after_a_head_answer_are_not_a_body_and_close_the_connection() -> None:
    """A HEAD answer has no body: bytes an upstream sends after its head are not passed on,
    and the connection is not reused for the next call (they would be read as its answer)."""
    conn, transport, events = standalone()
    resp = respond(conn, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", head_only=True)
    assert resp.result().body == b"" and resp.result().length == 2
    assert not conn.reusable and transport.closed and "free" not in events


_LAUGHS = range(1, 40)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [*x]",  # an alias used inside itself
        "upstreams: &x {a: *x}",
        "a: " + "[" * 50_000 + "]" * 50_000,  # flow collections nested without end
        "a: " + "{a: " * 5_000 + "}" * 5_000,
        "- " * 20_000 + "x",  # block collections nested past the parser's recursion
        "\n".join(["l0: &l0 [x, x]", *(f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in _LAUGHS)]),
    ],
    ids=["self-alias", "self-mapping", "deep-flow", "deep-flow-map", "deep-block", "laughs"],
)
def test_a_config_nested_or_expanded_without_bound_is_a_config_problem(text: str) -> None:
    """`sidecar check`, start and reload report a file that nests without end or expands
    exponentially through aliases as a problem, at once: never a crash, a hang or the memory."""
    started = time.perf_counter()
    with pytest.raises(ConfigError) as refused:
        parse_config(text, "sidecar.yaml", {}, resolve_secrets=False)
    assert time.perf_counter() - started < 2
    assert any(w in str(refused.value) for w in ("nested", "values once aliases"))


def test_a_transfer_coding_split_over_two_lines_is_refused_like_one_line() -> None:
    """Only `chunked` is taken as a transfer coding: `gzip` is refused whether the app lists
    it in one `Transfer-Encoding` line or in two, never silently dropped with the header."""
    body = b"3\r\nabc\r\n0\r\n\r\n"
    one = b"POST /up/a HTTP/1.1\r\nhost: up\r\ntransfer-encoding: gzip, chunked\r\n\r\n"
    two = b"POST /up/a HTTP/1.1\r\nhost: up\r\ntransfer-encoding: gzip\r\n"
    two += b"transfer-encoding: chunked\r\n\r\n"
    assert run_listener(one + body).responses == [(400, "bad_request", False)]
    assert run_listener(two + body).responses == [(400, "bad_request", False)]


def test_a_long_invalid_list_is_reported_in_time_linear_in_its_length() -> None:
    """Every problem of a long list is reported, and quickly: each was compared with all the
    ones before it (10 000 items took about ten seconds to report, 90 000 many minutes)."""
    started = time.perf_counter()
    with pytest.raises(ConfigError) as refused:
        parse_config("routes: [" + "1," * 10_000 + "]", "sidecar.yaml", {})
    assert len(refused.value.problems) == 10_000
    assert time.perf_counter() - started < 5


def test_a_config_path_to_an_endless_file_is_refused_without_reading_it_all() -> None:
    """`sidecar check -c /dev/zero` (a device, an endless pipe) is a problem, not the memory."""
    with pytest.raises(ConfigError, match="larger than 16 MiB"):
        load_data("/dev/zero")


def test_a_secret_file_that_never_ends_is_a_problem_not_the_memory() -> None:
    """A secret reference to a device or an endless pipe is reported like an unreadable one."""
    text = "upstreams:\n  a:\n    url: http://127.0.0.1:1\n    request_headers:\n"
    text += "      x-key: {file: /dev/zero}\n"
    with pytest.raises(ConfigError, match="over 1048576 characters"):
        parse_config(text, "sidecar.yaml", {})
